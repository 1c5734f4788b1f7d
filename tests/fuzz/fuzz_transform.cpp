// libFuzzer target: site_transform::deserialize on arbitrary bytes.
// Accepted blobs must re-serialise to the same bytes, and (when small) apply as an orthogonal map
// that apply_rows_inverse undoes. The blob ends in an FNV-1a-64 checksum that a mutation almost
// always breaks, so an input whose checksum does not match is also tried with it recomputed:
// otherwise the fuzzer never gets past the checksum test.
#include <singlequant/transform.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "fuzz_support.hpp"

namespace sq = singlequant;

namespace {

template <class T>
void check_apply(const sq::site_transform& r, double tolerance) {
  const std::size_t n = r.size();
  std::vector<T> x(n), y(n);
  for (std::size_t k = 0; k < n; ++k) x[k] = static_cast<T>(std::sin(0.7 * static_cast<double>(k) + 0.3));
  y = x;
  r.apply_rows(sq::matrix_view<T>(y.data(), 1, n));
  double norm_x = 0, norm_y = 0;
  for (std::size_t k = 0; k < n; ++k) {
    sq_fuzz::require(std::isfinite(static_cast<double>(y[k])), "apply_rows gave a non-finite value");
    norm_x += static_cast<double>(x[k]) * static_cast<double>(x[k]);
    norm_y += static_cast<double>(y[k]) * static_cast<double>(y[k]);
  }
  sq_fuzz::require(std::fabs(std::sqrt(norm_y) - std::sqrt(norm_x)) <= tolerance * std::sqrt(norm_x),
                   "apply_rows changed the norm (not orthogonal)");
  r.apply_rows_inverse(sq::matrix_view<T>(y.data(), 1, n));
  for (std::size_t k = 0; k < n; ++k)
    sq_fuzz::require(std::fabs(static_cast<double>(y[k]) - static_cast<double>(x[k])) <=
                         tolerance * (1.0 + std::sqrt(norm_x)),
                     "apply_rows_inverse did not undo apply_rows");
}

// FNV-1a-64 of the bytes (the format's checksum, written from its definition, not the library's).
std::uint64_t fnv1a64(std::span<const std::uint8_t> bytes) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const std::uint8_t b : bytes) h = (h ^ b) * 0x100000001b3ULL;
  return h;
}

void check(std::span<const std::uint8_t> blob) {
  std::optional<sq::site_transform> r;
  try {
    r.emplace(sq::site_transform::deserialize(blob));
  } catch (const sq::error&) {
    return;  // rejected, as documented
  }
  const std::vector<std::uint8_t> again = r->serialize();
  sq_fuzz::require(again.size() == blob.size() && sq_fuzz::same_bits(again.data(), blob.data(), blob.size()),
                   "serialize(deserialize(blob)) != blob");
  if (r->size() <= 4096) {
    check_apply<double>(*r, 1e-9);
    check_apply<float>(*r, 1e-3);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> blob(data, size);
  check(blob);
  if (size >= 8) {
    std::vector<std::uint8_t> fixed(blob.begin(), blob.end());
    const std::uint64_t sum = fnv1a64(blob.first(size - 8));
    for (int k = 0; k < 8; ++k) fixed[size - 8 + std::size_t(k)] = static_cast<std::uint8_t>(sum >> (8 * k));
    if (!sq_fuzz::same_bits(fixed.data(), data, size)) check(fixed);
  }
  return 0;
}
