#include <singlequant/reduce.hpp>
#include <singlequant/simd.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace sq = singlequant;

TEST_CASE("xsimd: the headers compiled are those of the package CMake found") {
  // Catches a build that mixes one xsimd's CMake config with another's headers (e.g. Debian's 8.1
  // in /usr/include ahead of a vcpkg 14.x): the macros come from the headers, the string from CMake.
  const std::string compiled = std::to_string(XSIMD_VERSION_MAJOR) + "." +
                               std::to_string(XSIMD_VERSION_MINOR) + "." +
                               std::to_string(XSIMD_VERSION_PATCH);
  MESSAGE("xsimd ", compiled);
  CHECK(compiled == SINGLEQUANT_TEST_XSIMD_VERSION);
}

TEST_CASE("cpu detection is self-consistent") {
  const auto& cpu = sq::host_cpu();
  CHECK(cpu.supports(sq::isa::scalar));
  CHECK(cpu.supports(cpu.best()));
  // A path is only reported when every narrower path is too.
  for (int i = 1; i <= static_cast<int>(cpu.best()); ++i) CHECK(cpu.supports(static_cast<sq::isa>(i)));
  MESSAGE("best isa here: " << sq::isa_name(cpu.best()));
#if defined(__x86_64__)
  CHECK(cpu.sse2);  // part of x86-64
#endif
}

TEST_CASE("static mode runs the isa of the translation unit's flags") {
  CHECK(sq::active_isa() == sq::simd::isa_of<sq::simd::default_arch>());
  CHECK(sq::simd::isa_of<sq::simd::scalar_arch>() == sq::isa::scalar);
  CHECK(sq::simd::isa_of<xsimd::avx512bw>() == sq::isa::avx512bw);
  CHECK(sq::simd::isa_of<xsimd::fma3<xsimd::avx2>>() == sq::isa::avx2_fma);
  CHECK(sq::isa_name(sq::isa::avx2_fma) == "avx2+fma");
}

TEST_CASE_TEMPLATE("absmax ignores NaN, keeps Inf, is 0 for empty input", T, float, double) {
  const T nan = std::numeric_limits<T>::quiet_NaN();
  std::vector<T> x(37, T(0.5));
  x[20] = T(-7);
  x[3] = nan;
  CHECK(sq::absmax(x) == T(7));
  CHECK(sq::absmax(std::vector<T>{}) == T(0));
  CHECK(sq::absmax(std::vector<T>(9, nan)) == T(0));
  x[30] = -std::numeric_limits<T>::infinity();
  CHECK(sq::absmax(x) == std::numeric_limits<T>::infinity());
}

TEST_CASE_TEMPLATE("dot matches a double-precision reference and checks sizes", T, float, double) {
  for (std::size_t n : {0u, 1u, 7u, 64u, 1000u}) {
    auto x = sq_test::random_normal<T>(n, 1 + n);
    auto y = sq_test::random_normal<T>(n, 2 + n);
    double reference = 0;
    for (std::size_t i = 0; i < n; ++i) reference += double(x[i]) * double(y[i]);
    const double tolerance = std::is_same_v<T, float> ? 1e-5 * std::sqrt(double(n) + 1) : 1e-13;
    CHECK(sq_test::close(double(sq::dot(x, y)), reference, tolerance));
  }
  SQ_CHECK_ERROR_CONTAINS(sq::dot(std::vector<T>(3), std::vector<T>(4)), "singlequant::dot", "3",
                          "4");
}
