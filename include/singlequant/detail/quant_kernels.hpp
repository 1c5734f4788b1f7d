// singlequant/detail/quant_kernels.hpp - INT4 quantise / pack / dequantise kernels.
//
// Every path produces the same bytes as the scalar path: per element the arithmetic is the same
// IEEE operations (y = x * inv, NaN -> 0, clamp, round to nearest even), and the reductions that
// feed decisions (ranges, clip-search errors) are either exact (min/max) or summed in a fixed
// 16-lane order with contraction barriers, so FMA contraction or the SIMD width cannot change them.
#ifndef SINGLEQUANT_DETAIL_QUANT_KERNELS_HPP
#define SINGLEQUANT_DETAIL_QUANT_KERNELS_HPP

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "arch/avx2.hpp"
#include "arch/avx512.hpp"
#include "arch/sse2.hpp"
#include "q4_0_kernels.hpp"
#include "simd_core.hpp"

// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*() (a self-initialised local), which
// its middle end reports as -W(maybe-)uninitialized once inlined into our kernels (GCC PR 105593).
#if defined(__GNUC__) && !defined(__clang__)
#  pragma GCC diagnostic push
#  pragma GCC diagnostic ignored "-Wuninitialized"
#  pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

SINGLEQUANT_BEGIN_NAMESPACE
namespace detail {

/// Min and max of the finite elements of a span together with 0 (so lo <= 0 <= hi), and the counts
/// of NaN and infinite elements. For double input "infinite" means |x| > FLT_MAX (scales are float).
template <class T>
struct value_range {
  T lo = 0;
  T hi = 0;
  std::size_t nan_count = 0;
  std::size_t inf_count = 0;
};

/// Scale and zero point of one group.
struct quant_params {
  float scale = 0.0f;
  int zero = 0;
};

/// The scale (and zero point) of a group whose finite range is [lo, hi] (lo <= 0 <= hi):
///   symmetric, symmetric7: s = clip max(hi, -lo) / 7;
///   symmetric, full8:      s = clip m / -8 with m = hi if hi > -lo else lo (the extreme lands on -8);
///   asymmetric:            s = clip (hi - lo) / (qmax - qmin), z = rne(qmin - clip lo / s).
/// Only a group with lo = hi = 0 (no finite non-zero value) gets scale 0, zero point 0 (it
/// dequantises to zeros). A scale below the smallest normal float is raised to it, sign kept, so
/// 1 / s stays finite and values near 1e-38 keep non-zero codes. Templated on Arch only to keep per-ISA copies
/// apart (see simd.hpp); every instantiation computes the same doubles (no FMA pattern).
template <class Arch = void>
SINGLEQUANT_INLINE quant_params make_params(double lo, double hi, double clip, int qmin, int qmax,
                                            bool asymmetric) noexcept {
  quant_params p;
  double s = 0;
  if (asymmetric) {
    s = (clip * hi - clip * lo) / static_cast<double>(qmax - qmin);
  } else if (qmin == -8) {
    const double m = hi > -lo ? hi : lo;
    s = clip * m / -8.0;
  } else {
    s = clip * (hi > -lo ? hi : -lo) / static_cast<double>(qmax);
  }
  if (lo == 0 && hi == 0) return p;
  auto scale = static_cast<float>(s);
  if (!(std::fabs(scale) >= std::numeric_limits<float>::min()))
    scale = std::copysign(std::numeric_limits<float>::min(), static_cast<float>(s));
  p.scale = scale;
  if (asymmetric) {
    const double t = static_cast<double>(qmin) - clip * lo / static_cast<double>(scale);
    const double z = std::nearbyint(std::clamp(t, static_cast<double>(qmin), static_cast<double>(qmax)));
    p.zero = static_cast<int>(z);
  }
  return p;
}

/// 1 / scale in the input's precision (0 for a zero scale, which sends every element to the zero
/// point: x * 0 is 0, and Inf * 0 is NaN, which is also mapped to 0).
template <class T, class Arch>
SINGLEQUANT_INLINE T inverse_scale(float scale) noexcept {
  return scale == 0.0f ? T(0) : T(1) / static_cast<T>(scale);
}

/// Round to nearest, ties to even, for |y| <= 2^22 (float) / 2^51 (double): adding and removing
/// 1.5 * 2^23 (2^52) makes the FPU round at the units digit. No library call.
template <class Arch>
SINGLEQUANT_INLINE float round_even_small(float y) noexcept {
  constexpr float magic = 12582912.0f;
  return (y + magic) - magic;
}
template <class Arch>
SINGLEQUANT_INLINE double round_even_small(double y) noexcept {
  constexpr double magic = 6755399441055744.0;
  return (y + magic) - magic;
}

/// The reference quantiser of one element: r = rne(clamp(y, lo, hi)) with y = x * inv and NaN -> 0;
/// lo = qmin - zero, hi = qmax - zero (the code is r + zero).
template <class T, class Arch>
SINGLEQUANT_INLINE int quantize_one(T x, T inv, T lo, T hi) noexcept {
  T y = x * inv;
  if (!(y == y)) y = T(0);
  y = y < lo ? lo : (y > hi ? hi : y);
  return static_cast<int>(round_even_small<Arch>(y));
}

/// The value code dequantises to, (code - zero) * scale, as dequantize writes it: in float for
/// float output, in double for double output.
template <class T, class Arch>
SINGLEQUANT_INLINE T dequantize_one(int code, int zero, float scale) noexcept {
  if constexpr (std::is_same_v<T, float>) {
    return static_cast<float>(code - zero) * scale;
  } else {
    return static_cast<T>(code - zero) * static_cast<T>(scale);
  }
}

/// Sum of 16 lane partial sums in a fixed pairwise order, in double.
template <class T, class Arch>
SINGLEQUANT_INLINE double sum16(const T* lanes) noexcept {
  double v[16];
  for (int k = 0; k < 16; ++k) v[k] = static_cast<double>(lanes[k]);
  for (int width = 8; width > 0; width /= 2)
    for (int k = 0; k < width; ++k) v[k] += v[k + width];
  return v[0];
}

/// to_nibble / from_nibble with per-ISA linkage (kernels call only Arch templates, see simd.hpp).
template <class Arch>
SINGLEQUANT_INLINE std::uint8_t nibble_of(int code) noexcept {
  return static_cast<std::uint8_t>(static_cast<unsigned>(code) & 0xFu);
}
template <class Arch>
SINGLEQUANT_INLINE int code_of(int nibble) noexcept {
  return (nibble & 0xF) - ((nibble & 0x8) << 1);
}

/// The raw-intrinsics helpers (detail/arch/) of Arch's packing path in this translation unit; void
/// where there are none (the xsimd-only path).
template <class Arch>
using quant_ops_t = arch::quant_ops_t<Arch>;

/// Whether quant_ops_t<Arch> has the fast loop of a clean row (clean_row).
template <class Arch>
constexpr bool has_clean_row_path() noexcept {
  if constexpr (std::is_void_v<quant_ops_t<Arch>>) {
    return false;
  } else {
    return quant_ops_t<Arch>::has_clean_row;
  }
}

/// Orders the non-temporal stores of a kernel before anything the caller does next (only the ops
/// of detail/arch/ store non-temporally).
template <class Arch>
SINGLEQUANT_INLINE void store_fence() noexcept {
  if constexpr (!std::is_void_v<quant_ops_t<Arch>>) quant_ops_t<Arch>::fence();
}

/// Writes 4 * B codes (four int32 batches, each code in -8..7) as 2 * B packed bytes (packed = true)
/// or as 4 * B int8 codes (packed = false).
template <bool packed, class Arch>
SINGLEQUANT_INLINE void store_codes4(const xsimd::batch<std::int32_t, Arch>& a,
                                     const xsimd::batch<std::int32_t, Arch>& b,
                                     const xsimd::batch<std::int32_t, Arch>& c,
                                     const xsimd::batch<std::int32_t, Arch>& d, void* out) noexcept {
  constexpr std::size_t lanes = xsimd::batch<std::int32_t, Arch>::size;
  using ops = quant_ops_t<Arch>;
  if constexpr (!std::is_void_v<ops>) {
    ops::template store_codes4<packed>(a, b, c, d, out);
    return;
  }
  alignas(64) std::int32_t v[4 * lanes];
  a.store_aligned(v);
  b.store_aligned(v + lanes);
  c.store_aligned(v + 2 * lanes);
  d.store_aligned(v + 3 * lanes);
  auto* bytes = static_cast<std::uint8_t*>(out);
  if constexpr (packed) {
    for (std::size_t k = 0; k < 2 * lanes; ++k)
      bytes[k] = static_cast<std::uint8_t>(nibble_of<Arch>(v[2 * k]) | nibble_of<Arch>(v[2 * k + 1]) << 4);
  } else {
    for (std::size_t k = 0; k < 4 * lanes; ++k) bytes[k] = static_cast<std::uint8_t>(v[k]);
  }
}

/// B codes (as int32 lanes) from B / 2 packed bytes.
template <class Arch>
SINGLEQUANT_INLINE xsimd::batch<std::int32_t, Arch> load_codes(const std::uint8_t* bytes) noexcept {
  using ibatch = xsimd::batch<std::int32_t, Arch>;
  using ops = quant_ops_t<Arch>;
  if constexpr (!std::is_void_v<ops>) return ibatch(ops::load_codes(bytes));
  alignas(64) std::int32_t v[ibatch::size];
  for (std::size_t k = 0; k < ibatch::size; ++k) v[k] = code_of<Arch>(bytes[k / 2] >> (4 * (k % 2)));
  return ibatch::load_aligned(v);
}

/// Quantises n floats with one scale into int4 codes: packed bytes (row_bytes(n), the high nibble of
/// an odd tail byte 0) or int8 codes. clean = true promises no NaN/Inf in x (skips the NaN filter).
template <bool packed, class Arch>
void quantize_float_span(const float* x, std::size_t n, float inv, int zero, int qmin, int qmax,
                         bool clean, void* out) noexcept {
  const auto lo = static_cast<float>(qmin - zero), hi = static_cast<float>(qmax - zero);
  auto* bytes = static_cast<std::uint8_t*>(out);
  std::size_t i = 0;
  if constexpr (!simd::is_scalar_v<Arch>) {
    using batch = xsimd::batch<float, Arch>;
    using ibatch = xsimd::batch<std::int32_t, Arch>;
    constexpr std::size_t lanes = batch::size;
    const batch inv_b(inv), lo_b(lo), hi_b(hi);
    const ibatch zero_b(zero);
    auto code = [&](const float* p) {
      batch y = batch::load_unaligned(p) * inv_b;
      if (!clean) y = xsimd::select(y == y, y, batch(0.0f));
      return xsimd::nearbyint_as_int(xsimd::min(xsimd::max(y, lo_b), hi_b)) + zero_b;
    };
    for (; i + 4 * lanes <= n; i += 4 * lanes) {
      const ibatch a = code(x + i), b = code(x + i + lanes), c = code(x + i + 2 * lanes),
                   d = code(x + i + 3 * lanes);
      store_codes4<packed, Arch>(a, b, c, d, packed ? static_cast<void*>(bytes + i / 2) : bytes + i);
    }
  }
  for (; i < n; ++i) {
    const int q = quantize_one<float, Arch>(x[i], inv, lo, hi) + zero;
    if constexpr (packed) {
      if (i % 2 == 0)
        bytes[i / 2] = nibble_of<Arch>(q);
      else
        bytes[i / 2] = static_cast<std::uint8_t>(bytes[i / 2] | nibble_of<Arch>(q) << 4);
    } else {
      bytes[i] = static_cast<std::uint8_t>(static_cast<std::int8_t>(q));
    }
  }
}

/// Min / max of a prefix of a row and whether it was free of NaN and Inf.
struct partial_range {
  float lo = 0;
  float hi = 0;
  bool clean = true;
};

/// Fast path of one clean row (no NaN / Inf, every |x * inv| < 2^30, zero point 0) where the ops
/// have one (has_clean_row: avx512_quant_ops::clean_row): 128 floats per step, the bytes of quantize_one, and the min / max
/// of the same span of next_row (if any) in the same step (software pipelining: the memory reads
/// of the next row overlap this row's arithmetic); next gets that range over the elements done.
/// stream = non-temporal stores when out is 64-byte aligned.
/// Returns the number of elements done (a multiple of 128; 0 without such ops).
template <class Arch>
std::size_t quantize_clean_row_fast(const float* x, std::size_t n, float inv, int qmin, int qmax,
                                    std::uint8_t* out, const float* next_row, bool stream,
                                    partial_range& next) noexcept {
  if constexpr (has_clean_row_path<Arch>()) {
    const bool nt = stream && reinterpret_cast<std::uintptr_t>(out) % 64 == 0;
    return quant_ops_t<Arch>::clean_row(x, n, inv, qmin, qmax, out, next_row, nt, next.lo, next.hi, next.clean);
  } else {
    static_cast<void>(x), static_cast<void>(n), static_cast<void>(inv), static_cast<void>(qmin);
    static_cast<void>(qmax), static_cast<void>(out), static_cast<void>(next_row), static_cast<void>(stream);
    static_cast<void>(next);
    return 0;
  }
}

/// value_range of n elements, robust to NaN / Inf (blends them out of the min / max).
template <class T, class Arch>
value_range<T> range_robust(const T* x, std::size_t n) noexcept {
  constexpr T finite_limit = static_cast<T>(std::numeric_limits<float>::max());
  value_range<T> r;
  bool nonfinite = false;
  std::size_t i = 0;
  if constexpr (!simd::is_scalar_v<Arch>) {
    using batch = xsimd::batch<T, Arch>;
    constexpr std::size_t lanes = batch::size;
    const batch zero(T(0)), limit(finite_limit);
    batch lo0 = zero, lo1 = zero, hi0 = zero, hi1 = zero;
    auto bad = !(zero == zero);
    for (; i + 2 * lanes <= n; i += 2 * lanes) {
      const batch a = batch::load_unaligned(x + i), b = batch::load_unaligned(x + i + lanes);
      const auto fa = xsimd::abs(a) <= limit, fb = xsimd::abs(b) <= limit;  // false for NaN
      const batch ca = xsimd::select(fa, a, zero), cb = xsimd::select(fb, b, zero);
      lo0 = xsimd::min(lo0, ca);
      hi0 = xsimd::max(hi0, ca);
      lo1 = xsimd::min(lo1, cb);
      hi1 = xsimd::max(hi1, cb);
      bad = bad | !(fa & fb);
    }
    alignas(64) T lo_lanes[lanes], hi_lanes[lanes];
    xsimd::min(lo0, lo1).store_aligned(lo_lanes);
    xsimd::max(hi0, hi1).store_aligned(hi_lanes);
    for (std::size_t k = 0; k < lanes; ++k) {
      r.lo = lo_lanes[k] < r.lo ? lo_lanes[k] : r.lo;
      r.hi = hi_lanes[k] > r.hi ? hi_lanes[k] : r.hi;
    }
    nonfinite = xsimd::any(bad);
  }
  for (; i < n; ++i) {
    const T v = x[i];
    if (std::fabs(v) <= finite_limit) {
      r.lo = v < r.lo ? v : r.lo;
      r.hi = v > r.hi ? v : r.hi;
    } else {
      nonfinite = true;
    }
  }
  if (nonfinite) {  // rare: count them in a second pass over (cached) data
    for (std::size_t k = 0; k < n; ++k) {
      if (x[k] != x[k])
        ++r.nan_count;
      else if (!(std::fabs(x[k]) <= finite_limit))
        ++r.inf_count;
    }
  }
  return r;
}

/// value_range of n elements (see value_range). The SIMD loop keeps plain min / max plus a probe
/// sum of x - x, which turns NaN on any NaN or Inf: rows with such values (rare) are redone by
/// range_robust, so the common path costs four cheap operations per batch.
template <class T, class Arch>
value_range<T> range_impl(const T* x, std::size_t n) noexcept {
  if constexpr (simd::is_scalar_v<Arch>) {
    return range_robust<T, Arch>(x, n);
  } else {
    constexpr T finite_limit = static_cast<T>(std::numeric_limits<float>::max());
    using batch = xsimd::batch<T, Arch>;
    constexpr std::size_t lanes = batch::size;
    const batch zero(T(0));
    batch lo0 = zero, lo1 = zero, hi0 = zero, hi1 = zero, probe0 = zero, probe1 = zero;
    std::size_t i = 0;
    for (; i + 2 * lanes <= n; i += 2 * lanes) {
      const batch a = batch::load_unaligned(x + i), b = batch::load_unaligned(x + i + lanes);
      lo0 = xsimd::min(lo0, a);
      hi0 = xsimd::max(hi0, a);
      lo1 = xsimd::min(lo1, b);
      hi1 = xsimd::max(hi1, b);
      probe0 += a - a;  // NaN for NaN or +-Inf, else 0 (compilers keep a - a when NaNs are honoured)
      probe1 += b - b;
    }
    const batch probe = probe0 + probe1;
    // Not probe != probe: xsimd 8.1's AVX operator!= is an ordered compare (false on NaN).
    if (!xsimd::all(probe == probe)) return range_robust<T, Arch>(x, n);
    value_range<T> r;
    alignas(64) T lo_lanes[lanes], hi_lanes[lanes];
    xsimd::min(lo0, lo1).store_aligned(lo_lanes);
    xsimd::max(hi0, hi1).store_aligned(hi_lanes);
    for (std::size_t k = 0; k < lanes; ++k) {
      r.lo = lo_lanes[k] < r.lo ? lo_lanes[k] : r.lo;
      r.hi = hi_lanes[k] > r.hi ? hi_lanes[k] : r.hi;
    }
    for (; i < n; ++i) {
      r.lo = x[i] < r.lo ? x[i] : r.lo;
      r.hi = x[i] > r.hi ? x[i] : r.hi;
      if (!(std::fabs(x[i]) <= finite_limit)) return range_robust<T, Arch>(x, n);
    }
    // Finite doubles beyond the float range count as infinities.
    if (r.hi > finite_limit || r.lo < -finite_limit) return range_robust<T, Arch>(x, n);
    return r;
  }
}

/// Clip-search error of n elements for one candidate, in units of the scale:
///   sum over finite x of (y - r)^2, y = x * inv, r = rne(clamp(y, qmin - zero, qmax - zero)).
/// Squares are summed in 16 fixed lanes (element i into lane i % 16), flushed to double every
/// 1024 elements in a fixed order, with contraction barriers: the same bits on every path.
template <class T, class Arch>
double clip_error_impl(const T* x, std::size_t n, T inv, int zero, int qmin, int qmax) noexcept {
  constexpr T finite_limit = static_cast<T>(std::numeric_limits<float>::max());
  constexpr std::size_t block = 1024;
  const auto lo = static_cast<T>(qmin - zero), hi = static_cast<T>(qmax - zero);
  double total = 0;
  alignas(64) T lanes16[16] = {};
  // The scalar step, in the lane the SIMD path would use (so the sums agree bit for bit):
  // u = y - rne(clamp(y)), lanes16[i mod 16] += u^2, with y = x_i * inv (0 for NaN / Inf).
  auto add_scalar_error = [&](std::size_t element) {
    T y = std::fabs(x[element]) <= finite_limit ? x[element] * inv : T(0);
    arch::no_contract<Arch>(y);
    const T c = y < lo ? lo : (y > hi ? hi : y);
    const T u = y - round_even_small<Arch>(c);
    T u2 = u * u;
    arch::no_contract<Arch>(u2);
    lanes16[element % 16] += u2;
  };
  std::size_t i = 0;
  if constexpr (!simd::is_scalar_v<Arch>) {
    using batch = xsimd::batch<T, Arch>;
    constexpr std::size_t lanes = batch::size;
    constexpr std::size_t per16 = 16 / lanes;
    static_assert(16 % lanes == 0, "batch width must divide 16");
    const batch inv_b(inv), lo_b(lo), hi_b(hi), limit(finite_limit), zero_b(T(0));
    while (i + 16 <= n) {
      const std::size_t end = std::min(n - n % 16, i + block);
      std::array<batch, per16> acc;
      acc.fill(zero_b);
      for (; i < end; i += 16) {
        for (std::size_t k = 0; k < per16; ++k) {
          const batch v = batch::load_unaligned(x + i + k * lanes);
          batch y = xsimd::select(xsimd::abs(v) <= limit, v * inv_b, zero_b);
          arch::no_contract<Arch>(y);
          const batch u = y - xsimd::nearbyint(xsimd::min(xsimd::max(y, lo_b), hi_b));
          batch u2 = u * u;
          arch::no_contract<Arch>(u2);
          acc[k] += u2;
        }
      }
      for (std::size_t k = 0; k < per16; ++k) acc[k].store_aligned(lanes16 + k * lanes);
      total += sum16<T, Arch>(lanes16);
      std::fill(lanes16, lanes16 + 16, T(0));
    }
  } else {
    while (i + 16 <= n) {
      const std::size_t end = std::min(n - n % 16, i + block);
      for (; i < end; ++i) add_scalar_error(i);
      total += sum16<T, Arch>(lanes16);
      std::fill(lanes16, lanes16 + 16, T(0));
    }
  }
  for (; i < n; ++i) add_scalar_error(i);  // tail of fewer than 16 elements
  return total + sum16<T, Arch>(lanes16);
}

/// Elements per double flush of clip_screen_impl's float lanes (bounds its rounding, see choose_group).
inline constexpr std::size_t clip_screen_block = 512;

/// Screening estimate of clip_error_impl for float copies of finite double elements:
///   F = sum over the n elements of (y - rne(clamp(y, qmin - zero, qmax - zero)))^2, y = x * inv,
/// every operation in float (products and sums may be fused), 16 float lanes flushed to double
/// lanes every clip_screen_block elements. Only a bound of its rounding is relied on: each term
/// sees at most 2 (clip_screen_block / 16 + 1) float roundings and the double sums add
/// (n / clip_screen_block + 16) double ones, so |F - sum of the exact squares of the float u| <=
/// clip_screen_gamma(n) F. Not the same bits on every path (choose_group gives the same result).
template <class Arch>
double clip_screen_impl(const float* x, std::size_t n, float inv, int zero, int qmin, int qmax) noexcept {
  constexpr std::size_t block = clip_screen_block;
  const auto lo = static_cast<float>(qmin - zero), hi = static_cast<float>(qmax - zero);
  alignas(64) float lanes16[16] = {};
  double sums[16] = {};
  std::size_t i = 0;
  if constexpr (!simd::is_scalar_v<Arch>) {
    using batch = xsimd::batch<float, Arch>;
    constexpr std::size_t lanes = batch::size;
    constexpr std::size_t per16 = 16 / lanes;
    static_assert(16 % lanes == 0, "batch width must divide 16");
    const batch inv_b(inv), lo_b(lo), hi_b(hi), zero_b(0.0f);
    // A symmetric range: the distance from y to the integers of [-hi, hi] is |y|'s to those of [0, hi].
    const bool symmetric = lo == -hi;
    while (i + 16 <= n) {
      const std::size_t end = std::min(n - n % 16, i + block);
      std::array<batch, per16> acc;
      acc.fill(zero_b);
      if (symmetric) {
        for (; i < end; i += 16) {
          for (std::size_t k = 0; k < per16; ++k) {
            const batch y = xsimd::abs(batch::load_unaligned(x + i + k * lanes) * inv_b);
            const batch u = y - xsimd::nearbyint(xsimd::min(y, hi_b));
            acc[k] = xsimd::fma(u, u, acc[k]);
          }
        }
      } else {
        for (; i < end; i += 16) {
          for (std::size_t k = 0; k < per16; ++k) {
            const batch y = batch::load_unaligned(x + i + k * lanes) * inv_b;
            const batch u = y - xsimd::nearbyint(xsimd::min(xsimd::max(y, lo_b), hi_b));
            acc[k] = xsimd::fma(u, u, acc[k]);
          }
        }
      }
      for (std::size_t k = 0; k < per16; ++k) acc[k].store_aligned(lanes16 + k * lanes);
      for (std::size_t k = 0; k < 16; ++k) sums[k] += static_cast<double>(lanes16[k]);
    }
  } else {
    while (i + 16 <= n) {
      const std::size_t end = std::min(n - n % 16, i + block);
      std::fill(lanes16, lanes16 + 16, 0.0f);
      for (; i < end; ++i) {
        const float y = x[i] * inv;
        const float c = y < lo ? lo : (y > hi ? hi : y);
        const float u = y - round_even_small<Arch>(c);
        lanes16[i % 16] += u * u;
      }
      for (std::size_t k = 0; k < 16; ++k) sums[k] += static_cast<double>(lanes16[k]);
    }
  }
  for (; i < n; ++i) {  // tail of fewer than 16 elements
    const float y = x[i] * inv;
    const float c = y < lo ? lo : (y > hi ? hi : y);
    const auto u = static_cast<double>(y - round_even_small<Arch>(c));
    sums[i % 16] += u * u;
  }
  double total = 0;
  for (const double s : sums) total += s;
  return total;
}

/// Relative rounding bound of clip_screen_impl over n elements (see there), with a factor 2 to spare.
inline double clip_screen_gamma(std::size_t n) noexcept {
  constexpr double float_eps = 0x1p-24, double_eps = 0x1p-53;
  return 2.0 * (static_cast<double>(2 * (clip_screen_block / 16 + 2)) * float_eps * 1.01 +
                (static_cast<double>(n / clip_screen_block) + 20.0) * double_eps);
}

/// out[i] = float(x[i]) (round to nearest) for n doubles with |x[i]| <= FLT_MAX; returns sum x[i]^2
/// in double, in any order (the caller bounds its rounding by n double roundings).
template <class Arch>
double to_float_sum_squares(const double* x, std::size_t n, float* out) noexcept {
  double s[8] = {};
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (std::size_t k = 0; k < 8; ++k) {
      out[i + k] = static_cast<float>(x[i + k]);
      s[k] += x[i + k] * x[i + k];
    }
  for (; i < n; ++i) {
    out[i] = static_cast<float>(x[i]);
    s[0] += x[i] * x[i];
  }
  return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

/// Stores a float batch, non-temporally when stream is set (p then aligned to the batch width).
template <class Arch>
SINGLEQUANT_INLINE void store_floats(float* p, const xsimd::batch<float, Arch>& v, bool stream) noexcept {
  using ops = quant_ops_t<Arch>;
  if constexpr (!std::is_void_v<ops>) {
    if (stream) {
      ops::stream(p, v);
      return;
    }
  }
  v.store_unaligned(p);
}

/// Dequantises n packed codes with per-group parameters: out_j = (q_j - z_g) * s_g, g = j / group.
/// stream: non-temporal stores for groups whose output can be 64-byte aligned by peeling an even
/// number of elements. Returns whether any non-temporal store was issued (the caller fences).
template <class Arch>
bool dequantize_float(const std::uint8_t* codes, std::size_t n, std::size_t group, const float* scales,
                      const std::int8_t* zeros, float* out, bool stream) noexcept {
  bool streamed = false;
  for (std::size_t j0 = 0, g = 0; j0 < n; j0 += group, ++g) {
    const std::size_t j1 = std::min(n, j0 + group);
    const float s = scales[g];
    const int z = zeros == nullptr ? 0 : zeros[g];
    std::size_t j = j0;
    auto scalar_until = [&](std::size_t end) {
      for (; j < end; ++j) out[j] = static_cast<float>(code_of<Arch>(codes[j / 2] >> (4 * (j % 2))) - z) * s;
    };
    if constexpr (!simd::is_scalar_v<Arch>) {
      using batch = xsimd::batch<float, Arch>;
      using ibatch = xsimd::batch<std::int32_t, Arch>;
      constexpr std::size_t lanes = batch::size;
      if (j0 % 2 == 0) {
        bool nt = false;
        if (stream && j1 - j0 >= 64) {
          const std::size_t misalignment = reinterpret_cast<std::uintptr_t>(out + j0) % 64;
          const std::size_t peel = misalignment == 0 ? 0 : (64 - misalignment) / sizeof(float);
          if (misalignment % sizeof(float) == 0 && peel % 2 == 0) {
            scalar_until(j0 + peel);
            nt = true;
          }
        }
        streamed = streamed || nt;
        const batch s_b(s);
        const ibatch z_b(z);
        for (; j + 2 * lanes <= j1; j += 2 * lanes) {
          const ibatch q0 = load_codes<Arch>(codes + j / 2) - z_b;
          const ibatch q1 = load_codes<Arch>(codes + j / 2 + lanes / 2) - z_b;
          store_floats<Arch>(out + j, xsimd::to_float(q0) * s_b, nt);
          store_floats<Arch>(out + j + lanes, xsimd::to_float(q1) * s_b, nt);
        }
      }
    }
    scalar_until(j1);
  }
  return streamed;
}

/// Counters of quantize_groups, in the order quantize() reports them.
struct group_counts {
  std::size_t nan_count = 0, inf_count = 0, zero_scale_count = 0, scale_count = 0;
  double clip_ratio_sum = 0;
};

/// Scale and zero point of one group of n elements: finite range, then, with several clip
/// candidates, the one of least s^2 sum (x / s - r)^2 (ties: the first), as quantize's
/// choose_group decides it (same functions, same order of operations).
template <std::size_t H>
struct lane_swap {  // generator: lane l exchanges with lane l ^ H
  static constexpr std::size_t get(std::size_t lane, std::size_t) { return lane ^ H; }
};

/// Lane-wise min and max of lo and hi over every lane (exact operations: any order gives the same
/// values), by log2(lanes) lane exchanges.
template <std::size_t H, class Arch>
SINGLEQUANT_INLINE void all_lanes_min_max(xsimd::batch<float, Arch>& lo, xsimd::batch<float, Arch>& hi) noexcept {
  if constexpr (H > 0) {
    const auto swap = simd::make_lane_constant<std::uint32_t, Arch, lane_swap<H>>();
    lo = xsimd::min(lo, xsimd::swizzle(lo, swap));
    hi = xsimd::max(hi, xsimd::swizzle(hi, swap));
    all_lanes_min_max<H / 2, Arch>(lo, hi);
  }
}

/// range_impl of a short group (a multiple of the batch width) with the lane reduction in
/// registers: the same values, the same fallback (range_impl) for any NaN / Inf.
template <class Arch>
SINGLEQUANT_INLINE value_range<float> group_range(const float* x, std::size_t n) noexcept {
  if constexpr (!simd::is_scalar_v<Arch>) {
    using batch = xsimd::batch<float, Arch>;
    constexpr std::size_t lanes = batch::size;
    if (n % lanes == 0) {
      const batch zero(0.0f);
      batch lo = zero, hi = zero, probe = zero;
      for (std::size_t i = 0; i < n; i += lanes) {
        const batch a = batch::load_unaligned(x + i);
        lo = xsimd::min(lo, a);
        hi = xsimd::max(hi, a);
        probe += a - a;  // NaN for NaN or +-Inf (see range_impl)
      }
      if (xsimd::all(probe == probe)) {
        all_lanes_min_max<lanes / 2, Arch>(lo, hi);
        alignas(64) float l[lanes], h[lanes];
        lo.store_aligned(l);
        hi.store_aligned(h);
        value_range<float> r;  // lo <= 0 <= hi, a zero of either sign as range_impl's +0
        r.lo = l[0] < 0.0f ? l[0] : 0.0f;
        r.hi = h[0] > 0.0f ? h[0] : 0.0f;
        return r;
      }
    }
  }
  return range_impl<float, Arch>(x, n);
}

template <class Arch>
SINGLEQUANT_INLINE quant_params choose_group_params(const float* x, std::size_t n, const double* ratios,
                                                    std::size_t ratio_count, int qmin, int qmax, bool asymmetric,
                                                    group_counts& counts) noexcept {
  const value_range<float> r = group_range<Arch>(x, n);
  counts.nan_count += r.nan_count;
  counts.inf_count += r.inf_count;
  const double lo = r.lo, hi = r.hi;
  quant_params best = make_params<Arch>(lo, hi, ratios[0], qmin, qmax, asymmetric);
  double best_ratio = ratios[0];
  if (ratio_count > 1 && best.scale != 0.0f) {
    double best_error = std::numeric_limits<double>::infinity();
    for (std::size_t c = 0; c < ratio_count; ++c) {
      const quant_params p = make_params<Arch>(lo, hi, ratios[c], qmin, qmax, asymmetric);
      if (p.scale == 0.0f) continue;
      double error = 0;
      error += clip_error_impl<float, Arch>(x, n, inverse_scale<float, Arch>(p.scale), p.zero, qmin, qmax);
      error *= static_cast<double>(p.scale) * static_cast<double>(p.scale);
      if (error < best_error) {
        best_error = error;
        best = p;
        best_ratio = ratios[c];
      }
    }
  }
  counts.zero_scale_count += best.scale == 0.0f ? 1u : 0u;
  counts.clip_ratio_sum += best_ratio;
  ++counts.scale_count;
  return best;
}

/// Floats per register of Arch (1 on the scalar path).
template <class Arch>
constexpr std::size_t float_lanes() noexcept {
  if constexpr (simd::is_scalar_v<Arch>)
    return 1;
  else
    return xsimd::batch<float, Arch>::size;
}

/// One row of n floats in groups of `group` (even, dividing n): per group its parameters
/// (choose_group_params; scales[g], zeros[g] when zeros is not null), then the packed codes, a
/// block of groups at a time while the block is in L1. Registers of four batches span several
/// groups when a batch divides the group (32 floats = two AVX-512 batches), each batch with its
/// group's 1 / s and zero point: the same per-element operations as quantize_float_span.
template <class Arch>
void quantize_group_blocks(const float* x, std::size_t n, std::size_t group, const double* ratios,
                           std::size_t ratio_count, int qmin, int qmax, bool asymmetric, std::uint8_t* out,
                           float* scales, std::int8_t* zeros, group_counts& counts) noexcept {
  constexpr std::size_t block_elements = 1024, max_block_groups = block_elements / 2;
  const std::size_t block_groups = group <= block_elements ? block_elements / group : 1;
  float inv[max_block_groups];
  int zero[max_block_groups];
  // Per batch of a block (SIMD, a batch dividing the group): its group's 1 / s and zero point.
  constexpr std::size_t lanes = float_lanes<Arch>();
  const bool by_batch = !simd::is_scalar_v<Arch> && group % lanes == 0;
  float batch_inv[block_elements / lanes];
  int batch_zero[block_elements / lanes];
  for (std::size_t b0 = 0, g0 = 0; b0 < n; b0 += block_groups * group, g0 += block_groups) {
    const std::size_t groups = (n - b0) / group < block_groups ? (n - b0) / group : block_groups;
    for (std::size_t k = 0; k < groups; ++k) {
#if defined(__GNUC__) || defined(__clang__)
      // Demand loads alone keep too few misses in flight for a memory-resident input: fetch 16 KiB
      // ahead, a group's span per group (addresses past the input never fault).
      for (std::size_t e = 0; e < group; e += 16) __builtin_prefetch(x + b0 + k * group + e + 4096, 0, 3);
#endif
      const quant_params p = choose_group_params<Arch>(x + b0 + k * group, group, ratios, ratio_count, qmin,
                                                       qmax, asymmetric, counts);
      scales[g0 + k] = p.scale;
      if (zeros != nullptr) zeros[g0 + k] = static_cast<std::int8_t>(p.zero);
      inv[k] = inverse_scale<float, Arch>(p.scale);
      zero[k] = p.zero;
      if (by_batch && group <= block_elements)
        for (std::size_t t = k * group / lanes; t < (k + 1) * group / lanes; ++t) {
          batch_inv[t] = inv[k];
          batch_zero[t] = zero[k];
        }
    }
    const std::size_t end = b0 + groups * group;
    std::size_t i = b0;
    if constexpr (!simd::is_scalar_v<Arch>) {
      using batch = xsimd::batch<float, Arch>;
      using ibatch = xsimd::batch<std::int32_t, Arch>;
      if (by_batch && group <= block_elements) {
        auto code = [&](std::size_t e) {
          const std::size_t t = (e - b0) / lanes;
          const int z = batch_zero[t];
          const auto lo = static_cast<float>(qmin - z), hi = static_cast<float>(qmax - z);
          batch y = batch::load_unaligned(x + e) * batch(batch_inv[t]);
          y = xsimd::select(y == y, y, batch(0.0f));
          return xsimd::nearbyint_as_int(xsimd::min(xsimd::max(y, batch(lo)), batch(hi))) + ibatch(z);
        };
        for (; i + 4 * lanes <= end; i += 4 * lanes)
          store_codes4<true, Arch>(code(i), code(i + lanes), code(i + 2 * lanes), code(i + 3 * lanes),
                                   out + i / 2);
      }
    }
    for (; i < end;) {  // the rest group by group (a group's span ends on a byte: group is even)
      const std::size_t k = (i - b0) / group, group_end = b0 + (k + 1) * group;
      quantize_float_span<true, Arch>(x + i, group_end - i, inv[k], zero[k], qmin, qmax, false, out + i / 2);
      i = group_end;
    }
  }
}

/// Whether quantize_16_groups has a path for Arch in this translation unit.
template <class Arch>
constexpr bool has_16_group_path() noexcept {
  if constexpr (std::is_void_v<quant_ops_t<Arch>>) {
    return false;
  } else {
    return quant_ops_t<Arch>::has_16_groups;
  }
}

/// The AVX-512 step of quantize_groups_impl (Q4_0 = false: 8 * group bytes of packed codes at out)
/// and of quantize_q4_0_impl (Q4_0 = true, group 32: block g's qs at out + 18 g + 2): 16 groups of
/// `group` floats (32 or 64) at x, symmetric grid, the same scales (clip search included),
/// codes and counts as quantize_group_blocks, in one pass over the floats (detail/arch/avx512.hpp).
/// Q4_0: *halves tells whether the blocks' fp16 scales d were written too (all 16 fit fp16).
/// Returns false, having written nothing, on other ISAs and group sizes and when a NaN or an Inf is
/// among the groups.
template <bool Q4_0, class Arch>
bool quantize_16_groups(const float* x, std::size_t group, const double* ratios, std::size_t ratio_count, int qmin,
                        int qmax, std::uint8_t* out, float* scales, group_counts& counts,
                        bool* halves = nullptr) noexcept {
  bool done = false;
  std::size_t zero_scales = 0;
  double chosen[16];
  if constexpr (has_16_group_path<Arch>()) {
    using ops = quant_ops_t<Arch>;
    if (group == 32) {
      done = ops::template quantize16<Q4_0, 32>(x, ratios, ratio_count, qmin, qmax, out, scales, chosen, zero_scales, halves);
    } else if constexpr (!Q4_0) {
      if (group == 64)
        done = ops::template quantize16<false, 64>(x, ratios, ratio_count, qmin, qmax, out, scales, chosen, zero_scales);
      // Group 128 stays with quantize_group_blocks: 16 of its groups (8 KiB) per step measured
      // slower than the block path (docs/performance.md).
    }
  }
  static_cast<void>(x), static_cast<void>(group), static_cast<void>(ratios), static_cast<void>(ratio_count);
  static_cast<void>(qmin), static_cast<void>(qmax), static_cast<void>(out), static_cast<void>(scales);
  static_cast<void>(halves);
  if (done) {  // the counters choose_group_params keeps, in its order
    counts.zero_scale_count += zero_scales;
    counts.scale_count += 16;
    for (const double r : chosen) counts.clip_ratio_sum += r;
  }
  return done;
}

/// Demand loads alone keep too few misses in flight for a memory-resident input: fetch 16 KiB
/// ahead of the n floats at x (addresses past the input never fault).
template <class Arch>
SINGLEQUANT_INLINE void prefetch_ahead(const float* x, std::size_t n) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  for (std::size_t e = 0; e < n; e += 16) __builtin_prefetch(x + e + 4096, 0, 3);
#else
  static_cast<void>(x), static_cast<void>(n);
#endif
}

/// One row of n floats in groups of `group` (even, dividing n), see quantize_group_blocks: with a
/// symmetric grid, 16 groups at a time by quantize_16_groups where it applies.
template <class Arch>
void quantize_groups_impl(const float* x, std::size_t n, std::size_t group, const double* ratios,
                          std::size_t ratio_count, int qmin, int qmax, bool asymmetric, std::uint8_t* out,
                          float* scales, std::int8_t* zeros, group_counts& counts) noexcept {
  std::size_t e = 0;
  if (has_16_group_path<Arch>() && !asymmetric && (group == 32 || group == 64)) {  // 128: the block path (faster, see above)
    for (const std::size_t step = 16 * group; e + step <= n; e += step) {
      prefetch_ahead<Arch>(x + e, step);
      if (!quantize_16_groups<false, Arch>(x + e, group, ratios, ratio_count, qmin, qmax, out + e / 2,
                                           scales + e / group, counts)) {
        quantize_group_blocks<Arch>(x + e, step, group, ratios, ratio_count, qmin, qmax, false, out + e / 2,
                                    scales + e / group, zeros == nullptr ? nullptr : zeros + e / group, counts);
      } else if (zeros != nullptr) {
        std::fill(zeros + e / group, zeros + e / group + 16, std::int8_t{0});
      }
    }
  }
  if (e < n)
    quantize_group_blocks<Arch>(x + e, n - e, group, ratios, ratio_count, qmin, qmax, asymmetric, out + e / 2,
                                scales + e / group, zeros == nullptr ? nullptr : zeros + e / group, counts);
}

/// One row of n floats (a multiple of 32) as ggml Q4_0 blocks without their fp16 scale d: block g's
/// 16 qs bytes at blocks + 18 g + 2 hold the codes quantize_groups_impl gives with group 32 (as
/// to_q4_0 reorders them), its float scale goes to scales[g]. Symmetric grids (qmax = 7) only.
/// Returns true when every block's fp16 scale d was written too (the 16-group steps write them
/// when their scales fit fp16); else the caller converts and checks scales (d then partly unset).
template <class Arch>
bool quantize_q4_0_impl(const float* x, std::size_t n, const double* ratios, std::size_t ratio_count, int qmin,
                        std::uint8_t* blocks, float* scales, group_counts& counts) noexcept {
  constexpr std::size_t chunk = 512;  // 16 groups
  std::uint8_t packed[chunk / 2];
  bool all_halves = true;
  for (std::size_t e = 0; e < n; e += chunk) {
    const std::size_t len = std::min(chunk, n - e), g0 = e / 32;
    prefetch_ahead<Arch>(x + e, len);
    bool halves = false;
    if (len == chunk && quantize_16_groups<true, Arch>(x + e, 32, ratios, ratio_count, qmin, 7, blocks + 18 * g0,
                                                       scales + g0, counts, &halves)) {
      all_halves = all_halves && halves;
      continue;
    }
    all_halves = false;
    quantize_group_blocks<Arch>(x + e, len, 32, ratios, ratio_count, qmin, 7, false, packed, scales + g0, nullptr,
                                counts);
    for (std::size_t k = 0; k < len / 32; ++k) q4_0_qs_from_packed(packed + 16 * k, blocks + 18 * (g0 + k) + 2);
  }
  return all_halves;
}

template <class Arch>
struct quant_kernel {
  static value_range<float> range(const float* x, std::size_t n) noexcept;
  static value_range<double> range(const double* x, std::size_t n) noexcept;

  /// Codes of n elements sharing one scale: packed (row_bytes(n) bytes) or int8 (n bytes).
  static void quantize_packed(const float* x, std::size_t n, float inv, int zero, int qmin, int qmax,
                              std::uint8_t* out) noexcept;
  static void quantize_codes(const float* x, std::size_t n, float inv, int zero, int qmin, int qmax,
                             std::int8_t* out) noexcept;
  static void quantize_codes(const double* x, std::size_t n, double inv, int zero, int qmin, int qmax,
                             std::int8_t* out) noexcept;

  /// One float row in scale groups of `group` (even, dividing n): quantize_groups_impl (scales,
  /// zeros (may be null) and packed codes; counts accumulated).
  static void quantize_groups(const float* x, std::size_t n, std::size_t group, const double* ratios,
                              std::size_t ratio_count, int qmin, int qmax, bool asymmetric, std::uint8_t* out,
                              float* scales, std::int8_t* zeros, group_counts& counts) noexcept;

  /// One float row (n a multiple of 32) as Q4_0 blocks of 18 bytes at blocks (quantize_q4_0_impl:
  /// qs and float scales, counts accumulated; true when the fp16 scales d were all written too).
  [[nodiscard]] static bool quantize_q4_0(const float* x, std::size_t n, const double* ratios, std::size_t ratio_count,
                            int qmin, std::uint8_t* blocks, float* scales, group_counts& counts) noexcept;

  /// clip_error_impl for one candidate.
  static double clip_error(const float* x, std::size_t n, float inv, int zero, int qmin, int qmax) noexcept;
  static double clip_error(const double* x, std::size_t n, double inv, int zero, int qmin, int qmax) noexcept;
  /// clip_screen_impl for one candidate (float copies of double elements, see choose_group).
  static double clip_screen(const float* x, std::size_t n, float inv, int zero, int qmin, int qmax) noexcept;
  /// to_float_sum_squares.
  static double to_float(const double* x, std::size_t n, float* out) noexcept;

  /// Per-column variants over one row of n elements (column j uses inv[j], zero[j]; zero may be null).
  static void column_range(const float* x, std::size_t n, float* lo, float* hi, std::size_t* nan_inf) noexcept;
  static void column_range(const double* x, std::size_t n, double* lo, double* hi, std::size_t* nan_inf) noexcept;
  static void quantize_columns(const float* x, std::size_t n, const float* inv, const std::int8_t* zero,
                               int qmin, int qmax, std::int8_t* out) noexcept;
  static void quantize_columns(const double* x, std::size_t n, const double* inv, const std::int8_t* zero,
                               int qmin, int qmax, std::int8_t* out) noexcept;
  static void clip_error_columns(const float* x, std::size_t n, const float* inv, const std::int8_t* zero,
                                 int qmin, int qmax, double* acc) noexcept;
  static void clip_error_columns(const double* x, std::size_t n, const double* inv,
                                 const std::int8_t* zero, int qmin, int qmax, double* acc) noexcept;

  /// Fused per-token path: for each row, finite range -> scale (make_params, symmetric) -> codes ->
  /// packed bytes at codes + i * out_stride; scales[i]; nan_inf[0..1] += NaN / Inf counts.
  /// stream: write codes with non-temporal stores where possible (large outputs).
  static void quantize_rows_fused(const float* x, std::size_t rows, std::size_t cols,
                                  std::size_t row_stride, double clip, int qmin, std::uint8_t* codes,
                                  std::size_t out_stride, float* scales, std::size_t* nan_inf,
                                  bool stream) noexcept;

  /// Dequantises n packed codes (starting at a byte boundary); element j uses scales[j / group] and
  /// zeros[j / group] (zeros may be null). stream (float only): non-temporal stores where aligned.
  static void dequantize(const std::uint8_t* codes, std::size_t n, std::size_t group, const float* scales,
                         const std::int8_t* zeros, float* out, bool stream) noexcept;
  static void dequantize(const std::uint8_t* codes, std::size_t n, std::size_t group, const float* scales,
                         const std::int8_t* zeros, double* out, bool stream) noexcept;
};

template <class Arch>
value_range<float> quant_kernel<Arch>::range(const float* x, std::size_t n) noexcept {
  return range_impl<float, Arch>(x, n);
}
template <class Arch>
value_range<double> quant_kernel<Arch>::range(const double* x, std::size_t n) noexcept {
  return range_impl<double, Arch>(x, n);
}

template <class Arch>
void quant_kernel<Arch>::quantize_packed(const float* x, std::size_t n, float inv, int zero, int qmin,
                                         int qmax, std::uint8_t* out) noexcept {
  quantize_float_span<true, Arch>(x, n, inv, zero, qmin, qmax, false, out);
}
template <class Arch>
void quant_kernel<Arch>::quantize_codes(const float* x, std::size_t n, float inv, int zero, int qmin,
                                        int qmax, std::int8_t* out) noexcept {
  quantize_float_span<false, Arch>(x, n, inv, zero, qmin, qmax, false, out);
}
template <class Arch>
void quant_kernel<Arch>::quantize_codes(const double* x, std::size_t n, double inv, int zero, int qmin,
                                        int qmax, std::int8_t* out) noexcept {
  // Offline (weights) path: double lanes would need int64 -> int8 narrowing; the scalar loop is exact.
  const auto lo = static_cast<double>(qmin - zero), hi = static_cast<double>(qmax - zero);
  for (std::size_t i = 0; i < n; ++i)
    out[i] = static_cast<std::int8_t>(quantize_one<double, Arch>(x[i], inv, lo, hi) + zero);
}

template <class Arch>
void quant_kernel<Arch>::quantize_groups(const float* x, std::size_t n, std::size_t group, const double* ratios,
                                         std::size_t ratio_count, int qmin, int qmax, bool asymmetric,
                                         std::uint8_t* out, float* scales, std::int8_t* zeros,
                                         group_counts& counts) noexcept {
  quantize_groups_impl<Arch>(x, n, group, ratios, ratio_count, qmin, qmax, asymmetric, out, scales, zeros, counts);
}

template <class Arch>
bool quant_kernel<Arch>::quantize_q4_0(const float* x, std::size_t n, const double* ratios, std::size_t ratio_count,
                                       int qmin, std::uint8_t* blocks, float* scales, group_counts& counts) noexcept {
  return quantize_q4_0_impl<Arch>(x, n, ratios, ratio_count, qmin, blocks, scales, counts);
}

template <class Arch>
double quant_kernel<Arch>::clip_error(const float* x, std::size_t n, float inv, int zero, int qmin,
                                      int qmax) noexcept {
  return clip_error_impl<float, Arch>(x, n, inv, zero, qmin, qmax);
}
template <class Arch>
double quant_kernel<Arch>::clip_error(const double* x, std::size_t n, double inv, int zero, int qmin,
                                      int qmax) noexcept {
  return clip_error_impl<double, Arch>(x, n, inv, zero, qmin, qmax);
}
template <class Arch>
double quant_kernel<Arch>::clip_screen(const float* x, std::size_t n, float inv, int zero, int qmin,
                                       int qmax) noexcept {
  return clip_screen_impl<Arch>(x, n, inv, zero, qmin, qmax);
}
template <class Arch>
double quant_kernel<Arch>::to_float(const double* x, std::size_t n, float* out) noexcept {
  return to_float_sum_squares<Arch>(x, n, out);
}

// Per-column kernels: element-wise loops (the compiler vectorises them with the TU's flags); each
// column's arithmetic is sequential over rows, so the result does not depend on the path.
template <class T, class Arch>
void column_range_impl(const T* x, std::size_t n, T* lo, T* hi, std::size_t* nan_inf) noexcept {
  constexpr T finite_limit = static_cast<T>(std::numeric_limits<float>::max());
  for (std::size_t j = 0; j < n; ++j) {
    const T v = std::fabs(x[j]) <= finite_limit ? x[j] : T(0);
    lo[j] = v < lo[j] ? v : lo[j];
    hi[j] = v > hi[j] ? v : hi[j];
  }
  for (std::size_t j = 0; j < n; ++j) {
    if (x[j] != x[j])
      ++nan_inf[0];
    else if (!(std::fabs(x[j]) <= finite_limit))
      ++nan_inf[1];
  }
}
template <class Arch>
void quant_kernel<Arch>::column_range(const float* x, std::size_t n, float* lo, float* hi,
                                      std::size_t* nan_inf) noexcept {
  column_range_impl<float, Arch>(x, n, lo, hi, nan_inf);
}
template <class Arch>
void quant_kernel<Arch>::column_range(const double* x, std::size_t n, double* lo, double* hi,
                                      std::size_t* nan_inf) noexcept {
  column_range_impl<double, Arch>(x, n, lo, hi, nan_inf);
}

template <class T, class Arch>
void quantize_columns_impl(const T* x, std::size_t n, const T* inv, const std::int8_t* zero, int qmin,
                           int qmax, std::int8_t* out) noexcept {
  for (std::size_t j = 0; j < n; ++j) {
    const int z = zero == nullptr ? 0 : zero[j];
    out[j] = static_cast<std::int8_t>(
        quantize_one<T, Arch>(x[j], inv[j], static_cast<T>(qmin - z), static_cast<T>(qmax - z)) + z);
  }
}
template <class Arch>
void quant_kernel<Arch>::quantize_columns(const float* x, std::size_t n, const float* inv,
                                          const std::int8_t* zero, int qmin, int qmax,
                                          std::int8_t* out) noexcept {
  quantize_columns_impl<float, Arch>(x, n, inv, zero, qmin, qmax, out);
}
template <class Arch>
void quant_kernel<Arch>::quantize_columns(const double* x, std::size_t n, const double* inv,
                                          const std::int8_t* zero, int qmin, int qmax,
                                          std::int8_t* out) noexcept {
  quantize_columns_impl<double, Arch>(x, n, inv, zero, qmin, qmax, out);
}

template <class T, class Arch>
void clip_error_columns_impl(const T* x, std::size_t n, const T* inv, const std::int8_t* zero, int qmin,
                             int qmax, double* acc) noexcept {
  constexpr T finite_limit = static_cast<T>(std::numeric_limits<float>::max());
  for (std::size_t j = 0; j < n; ++j) {
    const int z = zero == nullptr ? 0 : zero[j];
    const auto lo = static_cast<T>(qmin - z), hi = static_cast<T>(qmax - z);
    T y = std::fabs(x[j]) <= finite_limit ? x[j] * inv[j] : T(0);
    arch::no_contract<Arch>(y);
    const T c = y < lo ? lo : (y > hi ? hi : y);
    const auto u = static_cast<double>(y - round_even_small<Arch>(c));
    double u2 = u * u;
    arch::no_contract<Arch>(u2);
    acc[j] += u2;
  }
}
template <class Arch>
void quant_kernel<Arch>::clip_error_columns(const float* x, std::size_t n, const float* inv,
                                            const std::int8_t* zero, int qmin, int qmax,
                                            double* acc) noexcept {
  clip_error_columns_impl<float, Arch>(x, n, inv, zero, qmin, qmax, acc);
}
template <class Arch>
void quant_kernel<Arch>::clip_error_columns(const double* x, std::size_t n, const double* inv,
                                            const std::int8_t* zero, int qmin, int qmax,
                                            double* acc) noexcept {
  clip_error_columns_impl<double, Arch>(x, n, inv, zero, qmin, qmax, acc);
}

template <class Arch>
void quant_kernel<Arch>::quantize_rows_fused(const float* x, std::size_t rows, std::size_t cols,
                                             std::size_t row_stride, double clip, int qmin,
                                             std::uint8_t* codes, std::size_t out_stride, float* scales,
                                             std::size_t* nan_inf, bool stream) noexcept {
  bool streamed = false;
  if (rows == 0) return;
  // Each row is read from memory once, by its range pass; quantising it reads it again from L1
  // (a 4096-float row is 16 KiB). On AVX-512 the range pass of row i + 1 runs inside the
  // quantisation loop of row i, so memory reads and arithmetic overlap.
  value_range<float> r = range_impl<float, Arch>(x, cols);
  for (std::size_t i = 0; i < rows; ++i) {
    const float* row = x + i * row_stride;
    const float* next_row = i + 1 < rows ? row + row_stride : nullptr;
    std::uint8_t* out = codes + i * out_stride;
    const quant_params p = make_params<Arch>(r.lo, r.hi, clip, qmin, 7, false);
    scales[i] = p.scale;
    nan_inf[0] += r.nan_count;
    nan_inf[1] += r.inf_count;
    const float inv = inverse_scale<float, Arch>(p.scale);
    const bool clean = r.nan_count == 0 && r.inf_count == 0;
    value_range<float> next;
    bool have_next = false;
    std::size_t done = 0;
    // |x * inv| <= max|x| * inv stays far below 2^30 unless the clip ratio is absurdly small.
    if (clean && static_cast<double>(std::max(r.hi, -r.lo)) * static_cast<double>(inv) < 1e9) {
      partial_range head;
      done = quantize_clean_row_fast<Arch>(row, cols, inv, qmin, 7, out, next_row, stream, head);
      streamed = streamed || (stream && done > 0);
      if (next_row != nullptr && done > 0) {
        const value_range<float> tail =
            done < cols ? range_impl<float, Arch>(next_row + done, cols - done) : value_range<float>{};
        if (head.clean && tail.nan_count == 0 && tail.inf_count == 0) {
          next.lo = std::min(head.lo, tail.lo);
          next.hi = std::max(head.hi, tail.hi);
        } else {
          next = range_robust<float, Arch>(next_row, cols);
        }
        have_next = true;
      }
    }
    if (done < cols)
      quantize_float_span<true, Arch>(row + done, cols - done, inv, 0, qmin, 7, clean, out + done / 2);
    if (next_row != nullptr && !have_next) next = range_impl<float, Arch>(next_row, cols);
    r = next;
  }
  if (streamed) store_fence<Arch>();
}

template <class Arch>
void quant_kernel<Arch>::dequantize(const std::uint8_t* codes, std::size_t n, std::size_t group,
                                    const float* scales, const std::int8_t* zeros, float* out,
                                    bool stream) noexcept {
  if (dequantize_float<Arch>(codes, n, group, scales, zeros, out, stream)) store_fence<Arch>();
}
template <class Arch>
void quant_kernel<Arch>::dequantize(const std::uint8_t* codes, std::size_t n, std::size_t group,
                                    const float* scales, const std::int8_t* zeros, double* out,
                                    bool) noexcept {
  // The double output is an offline path; (q - z) * s is exact in double anyway.
  for (std::size_t j = 0; j < n; ++j) {
    const std::size_t g = j / group;
    const int z = zeros == nullptr ? 0 : zeros[g];
    out[j] = static_cast<double>(code_of<Arch>(codes[j / 2] >> (4 * (j % 2))) - z) *
             static_cast<double>(scales[g]);
  }
}

SINGLEQUANT_EXTERN_KERNEL(quant_kernel)

}  // namespace detail
SINGLEQUANT_END_NAMESPACE

#if defined(__GNUC__) && !defined(__clang__)
#  pragma GCC diagnostic pop
#endif

#endif  // SINGLEQUANT_DETAIL_QUANT_KERNELS_HPP
