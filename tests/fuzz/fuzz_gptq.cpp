// libFuzzer target: from_gptq on a gptq_tensor taken from the input.
// Input (little-endian): u64 out_features, u64 in_features, u64 group_size, u8 zero format (the
// enum's value: 0 v1, 1 v2, others must be refused), u32 qweight / qzeros / scales counts, then the qweight and qzeros words and the scales'
// float bits; an array is cut short where the input ends (a count is never trusted).
// Accepted tensors must convert back with to_gptq to the same arrays, bit for bit (from_gptq is
// documented as to_gptq's lossless inverse, and every bit of the layout is meaningful).
#include <singlequant/int4.hpp>
#include <singlequant/interop/gptq.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <vector>

#include "fuzz_support.hpp"

namespace sq = singlequant;

namespace {

template <class T>
std::vector<T> words(sq_fuzz::input& in, std::uint32_t count) {
  const std::size_t n = std::min<std::size_t>(count, in.remaining() / 4);
  std::vector<T> out(n);
  for (auto& w : out) {
    const std::uint32_t bits = in.u32();
    std::memcpy(&w, &bits, sizeof bits);
  }
  return out;
}

template <class T>
bool same(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && sq_fuzz::same_bits(a.data(), b.data(), a.size() * sizeof(T));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  sq_fuzz::input in(data, size);
  sq::gptq_tensor g;
  g.out_features = static_cast<std::size_t>(in.u64());
  g.in_features = static_cast<std::size_t>(in.u64());
  g.group_size = static_cast<std::size_t>(in.u64());
  g.zero_format = static_cast<sq::gptq_zero_format>(in.u8());
  const std::uint32_t nq = in.u32(), nz = in.u32(), ns = in.u32();
  g.qweight = words<std::uint32_t>(in, nq);
  g.qzeros = words<std::uint32_t>(in, nz);
  g.scales = words<float>(in, ns);

  std::optional<sq::packed_int4> q;
  try {
    q.emplace(sq::from_gptq(g));
  } catch (const sq::error&) {
    return 0;
  }
  sq_fuzz::require(q->rows() == g.out_features && q->cols() == g.in_features, "shape differs");
  // An empty tensor (no groups) has no zero-point storage, so has_zero_points() is false.
  sq_fuzz::require(q->grid() == sq::int4_grid::full8 && (q->has_zero_points() || q->scale_count() == 0),
                   "not full8 with zero points");
  sq_fuzz::require(g.zero_format == sq::gptq_zero_format::v1 || g.zero_format == sq::gptq_zero_format::v2,
                   "accepted an unknown zero format");
  for (const float s : q->scales()) sq_fuzz::require(std::isfinite(s), "accepted an Inf or NaN scale");
  // Dequantised: |code - zero point| <= 15, so a finite scale below FLT_MAX / 16 gives finite values.
  constexpr float safe = std::numeric_limits<float>::max() / 16;
  if (q->cols() > 0)
    for (std::size_t n = 0; n < q->rows(); ++n)
      for (std::size_t k = 0; k < q->cols(); ++k)
        sq_fuzz::require(!(std::fabs(q->scale(n, k)) <= safe) || std::isfinite(q->value(n, k)),
                         "a finite scale dequantised to a non-finite value");
  const sq::gptq_tensor back = sq::to_gptq(*q, g.zero_format);  // must not throw: see the file comment
  sq_fuzz::require(back.out_features == g.out_features && back.in_features == g.in_features &&
                       back.group_size == g.group_size && back.zero_format == g.zero_format,
                   "to_gptq(from_gptq(g)) has another shape");
  sq_fuzz::require(same(back.qweight, g.qweight), "qweight does not round-trip");
  sq_fuzz::require(same(back.qzeros, g.qzeros), "qzeros do not round-trip");
  sq_fuzz::require(same(back.scales, g.scales), "scales do not round-trip");
  return 0;
}
