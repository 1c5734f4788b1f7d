// Shared helpers of the unit tests: seeded random data and tolerance checks.
#ifndef SINGLEQUANT_TESTS_TEST_SUPPORT_HPP
#define SINGLEQUANT_TESTS_TEST_SUPPORT_HPP

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include <doctest/doctest.h>

namespace sq_test {

// Sanitizer builds (the dev preset: -O0 with ASan + UBSan, ~20x slower than Release) run the heaviest
// reference comparisons on a smaller sample; the Release jobs (ci, clang, xsimd 13/14) run them whole.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool sanitized_build = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool sanitized_build = true;
#else
inline constexpr bool sanitized_build = false;
#endif
#else
inline constexpr bool sanitized_build = false;
#endif

/// n normally distributed values, reproducible from the seed.
template <class T>
std::vector<T> random_normal(std::size_t n, std::uint64_t seed, double stddev = 1.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> dist(0.0, stddev);
  std::vector<T> out(n);
  for (auto& v : out) v = static_cast<T>(dist(rng));
  return out;
}

/// True when |a - b| <= tolerance * max(1, |a|, |b|).
inline bool close(double a, double b, double tolerance) {
  const double scale = std::fmax(1.0, std::fmax(std::fabs(a), std::fabs(b)));
  return std::fabs(a - b) <= tolerance * scale;
}

/// The two Givens sequences hold the same rotations in the same order, bit for bit (planes, c and
/// s compared by memcmp, so -0.0 != +0.0); stage boundaries may differ.
template <class Sequence>
void check_same_rotations(const Sequence& a, const Sequence& b) {
  auto flat = [](const Sequence& seq) {
    std::vector<std::decay_t<decltype(seq.stages()[0].rotations()[0])>> all;
    for (const auto& stage : seq.stages())
      for (const auto& g : stage.rotations()) all.push_back(g);
    return all;
  };
  const auto ra = flat(a), rb = flat(b);
  REQUIRE(ra.size() == rb.size());
  for (std::size_t r = 0; r < ra.size(); ++r) {
    CHECK(ra[r].i == rb[r].i);
    CHECK(ra[r].j == rb[r].j);
    CHECK(std::memcmp(&ra[r].c, &rb[r].c, sizeof(ra[r].c)) == 0);
    CHECK(std::memcmp(&ra[r].s, &rb[r].s, sizeof(ra[r].s)) == 0);
  }
}

/// max_ij |(R R^T - I)_ij| of a dense n x n row-major matrix R.
inline double orthogonality_error(const std::vector<double>& r, std::size_t n) {
  double worst = 0;
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      double dot = 0;
      for (std::size_t k = 0; k < n; ++k) dot += r[i * n + k] * r[j * n + k];
      worst = std::fmax(worst, std::fabs(dot - (i == j ? 1.0 : 0.0)));
    }
  return worst;
}

/// The directory with the reference models, or "" when the files are absent (tests then skip).
inline std::string models_dir() {
  if (const char* env = std::getenv("SINGLEQUANT_MODELS_DIR")) return env;
#ifdef SINGLEQUANT_MODELS_DIR
  return SINGLEQUANT_MODELS_DIR;
#else
  return "../shared/models";
#endif
}

/// Runs `body` and checks it throws singlequant::error whose message contains every fragment.
#define SQ_CHECK_ERROR_CONTAINS(expression, ...)                                      \
  do {                                                                                \
    bool sq_thrown = false;                                                           \
    try {                                                                             \
      static_cast<void>(expression);                                                  \
    } catch (const singlequant::error& sq_error) {                                    \
      sq_thrown = true;                                                               \
      const std::string sq_what = sq_error.what();                                    \
      for (const char* sq_fragment : {__VA_ARGS__}) {                                 \
        CHECK_MESSAGE(sq_what.find(sq_fragment) != std::string::npos,                 \
                      "message '" << sq_what << "' lacks '" << sq_fragment << "'");   \
      }                                                                               \
    }                                                                                 \
    CHECK_MESSAGE(sq_thrown, "expected singlequant::error from " #expression);        \
  } while (false)

}  // namespace sq_test

#endif
