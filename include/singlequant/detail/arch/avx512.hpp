// singlequant/detail/arch/avx512.hpp - AVX-512 intrinsics of the kernels (the avx512bw level).
//
// Float helpers (overloads on the xsimd tag xsimd::avx512f, chosen by the ISA-neutral kernels as
// arch::f(args..., Arch{}); the fallbacks are in generic.hpp): fused multiply-add, the in-register
// lane swaps of the FWHT, the first FWHT level folded into the loads, the 8 x 16 block transposes of
// the Givens tiles. Templates on the caller's Arch and always inlined (ODR: see sse2.hpp). The masked
// forms with an all-ones mask compile to the plain instructions; GCC 12 reports a false
// -Wmaybe-uninitialized inside the plain forms (their _mm512_undefined_* source).
//
// INT4 GEMM ops: the ops structs of detail/arch/ all have one shape, which the ISA-neutral kernel in
// detail/int4_gemm_kernels.hpp is written against:
//   ivec                      int32 accumulator lanes (lanes of them)
//   wvec                      lanes x 4 unsigned weight bytes (codes + 8, 0..15)
//   unpack(p, lo, hi)         lanes * 4 bytes of the kernel layout at p: lo = low nibbles, hi = high
//   dot8(acc, lo, hi, a)      acc + per lane sum_b lo_b a[b] + hi_b a[4 + b] (a: 8 signed codes)
//   fold(c, s, acc)           c[l] = float(acc_l) * s[l] + c[l] for l < lanes
//   set1(v)                   every lane v
// Structs with weights_outer = false (the weights-inner tile order) also have, for the tiles that
// split the nibble products (int4_split_tile):
//   dot4(acc, w, a)           acc + per lane sum_b w_b a[b] (a: 4 signed codes)
//   add(x, y)                 lane-wise int32 x + y
// int4_ops<Vnni>(tag) names the struct of a tag (std::type_identity). Compiled only when the
// translation unit has the ISA's flags.
#ifndef SINGLEQUANT_DETAIL_ARCH_AVX512_HPP
#define SINGLEQUANT_DETAIL_ARCH_AVX512_HPP

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "../../config.hpp"

SINGLEQUANT_BEGIN_NAMESPACE
namespace detail::arch {

/// Whether the translation unit has AVX512-VNNI instructions (else the caller checks CPUID).
#if defined(__AVX512VNNI__)
inline constexpr bool vnni_compiled = true;
#else
inline constexpr bool vnni_compiled = false;
#endif

/// Tuning traits of the tag (fallbacks: generic.hpp): 32 vector registers, a fused multiply-add.
template <class = void>
constexpr std::size_t vector_registers(xsimd::avx512f) noexcept {
  return 32;
}
template <class = void>
constexpr bool has_fma(xsimd::avx512f) noexcept {
  return true;
}

#if XSIMD_WITH_AVX512F
/// x y + z, one rounding (xsimd 8.1 has no AVX-512 fma).
template <class Arch>
SINGLEQUANT_INLINE xsimd::batch<float, Arch> fmadd(const xsimd::batch<float, Arch>& x, const xsimd::batch<float, Arch>& y,
                                                   const xsimd::batch<float, Arch>& z, xsimd::avx512f) noexcept {
  return _mm512_fmadd_ps(x, y, z);
}
template <class Arch>
SINGLEQUANT_INLINE xsimd::batch<double, Arch> fmadd(const xsimd::batch<double, Arch>& x, const xsimd::batch<double, Arch>& y,
                                                    const xsimd::batch<double, Arch>& z, xsimd::avx512f) noexcept {
  return _mm512_fmadd_pd(x, y, z);
}

/// Lane l of the result is lane l ^ H of x: in-lane permutes below 128 bits, 128-bit lane shuffles
/// above, one uop each. (H >= lanes is never run; it returns x.)
template <std::size_t H, class Arch>
SINGLEQUANT_INLINE xsimd::batch<float, Arch> swap_lanes(const xsimd::batch<float, Arch>& x, xsimd::avx512f) noexcept {
  constexpr int swap_pairs = 0xB1, swap_halves = 0x4E;  // element order [1,0,3,2] and [2,3,0,1]
  if constexpr (H == 1) return _mm512_mask_permute_ps(x, 0xFFFF, x, swap_pairs);
  else if constexpr (H == 2) return _mm512_mask_permute_ps(x, 0xFFFF, x, swap_halves);
  else if constexpr (H == 4) return _mm512_mask_shuffle_f32x4(x, 0xFFFF, x, x, swap_pairs);
  else if constexpr (H == 8) return _mm512_mask_shuffle_f32x4(x, 0xFFFF, x, x, swap_halves);
  else return x;
}
template <std::size_t H, class Arch>
SINGLEQUANT_INLINE xsimd::batch<double, Arch> swap_lanes(const xsimd::batch<double, Arch>& x, xsimd::avx512f) noexcept {
  constexpr int swap_pairs = 0xB1, swap_halves = 0x4E;
  if constexpr (H == 1) return _mm512_mask_permute_pd(x, 0xFF, x, 0x55);
  else if constexpr (H == 2) return _mm512_mask_shuffle_f64x2(x, 0xFF, x, x, swap_pairs);
  else if constexpr (H == 4) return _mm512_mask_shuffle_f64x2(x, 0xFF, x, x, swap_halves);
  else return x;
}

#  if defined(__GNUC__) || defined(__clang__)
/// The first FWHT level (lanes l, l ^ 1) of the 16 floats at p, its lane exchange done by the load
/// unit: movsldup/movshdup from memory ([e0 e0 e2 e2 ..], [e1 e1 e3 e3 ..]) are pure loads, so the
/// level costs one fma(odd, sign1, even) = e0 + e1, e0 - e1 and no shuffle.
template <class Arch>
SINGLEQUANT_INLINE xsimd::batch<float, Arch> load_first_level(const float* p, const xsimd::batch<float, Arch>& sign1,
                                                              xsimd::avx512f) noexcept {
  __m512 even, odd;
  __asm__("vmovsldup %1, %0" : "=v"(even) : "m"(*reinterpret_cast<const __m512_u*>(p)));
  __asm__("vmovshdup %1, %0" : "=v"(odd) : "m"(*reinterpret_cast<const __m512_u*>(p)));
  return _mm512_fmadd_ps(odd, sign1, even);
}
#  endif

template <class Arch>
SINGLEQUANT_INLINE __m512 unpack_lo_512(__m512 a, __m512 b) noexcept { return _mm512_mask_unpacklo_ps(a, 0xFFFF, a, b); }
template <class Arch>
SINGLEQUANT_INLINE __m512 unpack_hi_512(__m512 a, __m512 b) noexcept { return _mm512_mask_unpackhi_ps(a, 0xFFFF, a, b); }
template <int imm, class Arch>
SINGLEQUANT_INLINE __m512 shuffle_512(__m512 a, __m512 b) noexcept { return _mm512_mask_shuffle_ps(a, 0xFFFF, a, b, imm); }
template <class Arch>
SINGLEQUANT_INLINE __m512d unpack_lo_512(__m512d a, __m512d b) noexcept { return _mm512_mask_unpacklo_pd(a, 0xFF, a, b); }
template <class Arch>
SINGLEQUANT_INLINE __m512d unpack_hi_512(__m512d a, __m512d b) noexcept { return _mm512_mask_unpackhi_pd(a, 0xFF, a, b); }

/// Both 8 x 8 halves of the 8 x 16 float block at p (rows ss apart), in place: one 512-bit register
/// per row, the two halves transposed side by side (3 shuffles per register, no 256-bit lane
/// crossing). Rows: the tile's rows (8 for float).
template <class Arch, std::size_t Rows>
SINGLEQUANT_INLINE void transpose_halves(float* p, std::size_t ss, xsimd::avx512f) noexcept {
  static_assert(Rows == 8);
  __m512 t[8], u[8];
  for (std::size_t k = 0; k < 4; ++k) {
    const __m512 a = _mm512_loadu_ps(p + 2 * k * ss), b = _mm512_loadu_ps(p + (2 * k + 1) * ss);
    t[2 * k] = unpack_lo_512<Arch>(a, b);  // per 128-bit lane q: a(4q) b(4q) a(4q+1) b(4q+1)
    t[2 * k + 1] = unpack_hi_512<Arch>(a, b);
  }
  for (std::size_t g = 0; g < 2; ++g) {  // u[4g + m] lane q: column 4q + m, rows 4g..4g+3
    u[4 * g + 0] = shuffle_512<0x44, Arch>(t[4 * g], t[4 * g + 2]);
    u[4 * g + 1] = shuffle_512<0xEE, Arch>(t[4 * g], t[4 * g + 2]);
    u[4 * g + 2] = shuffle_512<0x44, Arch>(t[4 * g + 1], t[4 * g + 3]);
    u[4 * g + 3] = shuffle_512<0xEE, Arch>(t[4 * g + 1], t[4 * g + 3]);
  }
  for (std::size_t m = 0; m < 4; ++m) {  // row m: columns m | 8 + m = lanes 0, 2 of u[m] and u[4 + m]
    _mm512_storeu_ps(p + m * ss, _mm512_mask_shuffle_f32x4(u[m], 0xF0F0, u[4 + m], u[4 + m], 0xA0));
    _mm512_storeu_ps(p + (4 + m) * ss, _mm512_mask_shuffle_f32x4(u[4 + m], 0x0F0F, u[m], u[m], 0xF5));
  }
}
/// Both 4 x 4 halves of the 4 x 8 double block at p, in place.
template <class Arch, std::size_t Rows>
SINGLEQUANT_INLINE void transpose_halves(double* p, std::size_t ss, xsimd::avx512f) noexcept {
  static_assert(Rows == 4);
  const __m512d r0 = _mm512_loadu_pd(p), r1 = _mm512_loadu_pd(p + ss);
  const __m512d r2 = _mm512_loadu_pd(p + 2 * ss), r3 = _mm512_loadu_pd(p + 3 * ss);
  const __m512d t0 = unpack_lo_512<Arch>(r0, r1), t1 = unpack_hi_512<Arch>(r0, r1);  // per lane q: a(2q) b(2q)
  const __m512d t2 = unpack_lo_512<Arch>(r2, r3), t3 = unpack_hi_512<Arch>(r2, r3);
  _mm512_storeu_pd(p, _mm512_mask_shuffle_f64x2(t0, 0xCC, t2, t2, 0xA0));  // lanes t0.0 t2.0 t0.2 t2.2
  _mm512_storeu_pd(p + ss, _mm512_mask_shuffle_f64x2(t1, 0xCC, t3, t3, 0xA0));
  _mm512_storeu_pd(p + 2 * ss, _mm512_mask_shuffle_f64x2(t2, 0x33, t0, t0, 0xF5));  // t0.1 t2.1 t0.3 t2.3
  _mm512_storeu_pd(p + 3 * ss, _mm512_mask_shuffle_f64x2(t3, 0x33, t1, t1, 0xF5));
}
#endif  // XSIMD_WITH_AVX512F

}  // namespace detail::arch
SINGLEQUANT_END_NAMESPACE

#if defined(__AVX512F__) && defined(__AVX512BW__)
#  include <immintrin.h>

SINGLEQUANT_BEGIN_NAMESPACE
namespace detail::arch {
namespace {

/// Vnni: vpdpbusd (u8 x s8 -> s32, 4 products per lane); without it, vpmaddubsw + vpmaddwd (exact:
/// |lo a0 + lo' a0'| <= 2 * 15 * 8 = 240 per int16 pair, 480 after adding the high nibbles' pairs).
template <bool Vnni>
struct avx512_int4_ops {
  using ivec = __m512i;
  using wvec = __m512i;
  static constexpr std::size_t lanes = 16;
  // Register tile (activation rows x 16-row weight panels). VNNI: 8 x 2 (16 accumulators); each
  // unpacked weight vector (three 512-bit ALU ops, on the ports vpdpbusd uses) then serves 8 rows,
  // 1.13-1.2x the 4 x 4 tile at M = 512 (16 x 1, 12 x 2, 10 x 2, 6 x 3 measured slower;
  // docs/performance.md). Without VNNI the pmaddubsw sequence dominates: 4 x 4.
  static constexpr std::size_t tile_rows = Vnni ? 8 : 4;
  static constexpr bool weights_outer = false;  // loop order of the tile (int4_gemm_kernels.hpp)
  static constexpr std::size_t tile_panels = Vnni ? 2 : 4;
  // M <= 8 (decoding, the weights read once): 4 x 4, four panel streams in flight.
  static constexpr std::size_t stream_tile_rows = 4;
  static constexpr std::size_t stream_tile_panels = 4;

  static ivec set1(std::int32_t v) noexcept { return _mm512_set1_epi32(v); }
  static void unpack(const std::uint8_t* p, wvec& lo, wvec& hi) noexcept {
    const __m512i raw = _mm512_loadu_si512(p);
    const __m512i mask = _mm512_set1_epi8(0x0F);
    lo = _mm512_and_si512(raw, mask);
    hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), mask);
  }
  static ivec dot8(ivec acc, wvec lo, wvec hi, const std::int8_t* a) noexcept {
    std::int32_t a0 = 0, a1 = 0;
    std::memcpy(&a0, a, 4);
    std::memcpy(&a1, a + 4, 4);
    const __m512i b0 = _mm512_set1_epi32(a0), b1 = _mm512_set1_epi32(a1);
    if constexpr (Vnni) {
#  if defined(__AVX512VNNI__)
      acc = _mm512_dpbusd_epi32(acc, lo, b0);
      acc = _mm512_dpbusd_epi32(acc, hi, b1);
#  else
      // The translation unit is built for AVX-512BW only; the caller checked CPUID for VNNI.
      __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(lo), "v"(b0));
      __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(hi), "v"(b1));
#  endif
      return acc;
    } else {
      const __m512i pairs = _mm512_add_epi16(_mm512_maddubs_epi16(lo, b0), _mm512_maddubs_epi16(hi, b1));
      return _mm512_add_epi32(acc, _mm512_madd_epi16(pairs, _mm512_set1_epi16(1)));
    }
  }
  /// acc + the 4-byte dot products of w with a[0..3] in every lane (one half of dot8).
  static ivec dot4(ivec acc, wvec w, const std::int8_t* a) noexcept {
    std::int32_t a0 = 0;
    std::memcpy(&a0, a, 4);
    const __m512i b0 = _mm512_set1_epi32(a0);
    if constexpr (Vnni) {
#  if defined(__AVX512VNNI__)
      return _mm512_dpbusd_epi32(acc, w, b0);
#  else
      __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(w), "v"(b0));
      return acc;
#  endif
    } else {
      return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(w, b0), _mm512_set1_epi16(1)));
    }
  }
  static ivec add(ivec x, ivec y) noexcept { return _mm512_add_epi32(x, y); }
  static void fold(float* c, const float* s, ivec acc) noexcept {
    // maskz: GCC 12's _mm512_cvtepi32_ps passes _mm512_undefined_ps(), a -Wmaybe-uninitialized false positive.
    _mm512_storeu_ps(c, _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(static_cast<__mmask16>(0xFFFF), acc), _mm512_loadu_ps(s), _mm512_loadu_ps(c)));
  }
};


// ---- INT4 quantise (detail/quant_kernels.hpp; issue 17 item 5) ----------------------------------
// Sixteen scale groups of G floats at a time (G = 32, 64, 128). Every operation here is exact or
// correctly rounded, in the order the scalar reference uses (quant_kernels.hpp), so the scales and
// codes are the scalar path's bits (tests/arch/test_quant_arch.cpp).
#  if defined(__GNUC__) && !defined(__clang__)
#    pragma GCC diagnostic push  // GCC PR 105593 (_mm512_undefined_*), see quant_kernels.hpp
#    pragma GCC diagnostic ignored "-Wuninitialized"
#    pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#    pragma GCC diagnostic ignored "-Wsign-conversion"  // -O0: GCC's intrinsic macros pass (__mmask16)-1
#    pragma GCC diagnostic ignored "-Wconversion"
#  endif
struct avx512_quant_ops {
  /// Lane g of the result: op over the 16 lanes of v[g] (v is overwritten). Four levels of
  /// transposing merges; they leave group q + 4 j in lane 4 q + j, which the last permute undoes.
  template <class Op>
  static __m512 reduce16(__m512* v, Op op) noexcept {
    for (int k = 0; k < 8; ++k)
      v[k] = op(_mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], 0x44), _mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], 0xEE));
    for (int k = 0; k < 4; ++k)
      v[k] = op(_mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], 0x88), _mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], 0xDD));
    for (int k = 0; k < 2; ++k)
      v[k] = op(_mm512_shuffle_ps(v[2 * k], v[2 * k + 1], 0x44), _mm512_shuffle_ps(v[2 * k], v[2 * k + 1], 0xEE));
    const __m512 r = op(_mm512_shuffle_ps(v[0], v[1], 0x88), _mm512_shuffle_ps(v[0], v[1], 0xDD));
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), r);
  }

  /// lo[g] = min(0, x), hi[g] = max(0, x) over group g (G floats at x + g G), g < 16, zeros as +0.
  /// Returns false when a NaN or an Inf is among them (lo, hi then unspecified).
  template <std::size_t G>
  static bool ranges(const float* x, __m512& lo, __m512& hi) noexcept {
    const __m512 zero = _mm512_setzero_ps();
    __m512 mins[16], maxs[16], probe0 = zero, probe1 = zero;
    for (std::size_t g = 0; g < 16; ++g) {
      const float* p = x + g * G;
      __m512 a = _mm512_loadu_ps(p), b = _mm512_loadu_ps(p + 16);
      __m512 l = _mm512_min_ps(a, b), h = _mm512_max_ps(a, b);
      probe0 = _mm512_fmadd_ps(a, zero, probe0);  // NaN once a NaN or an Inf went by
      probe1 = _mm512_fmadd_ps(b, zero, probe1);
      for (std::size_t k = 32; k < G; k += 32) {
        a = _mm512_loadu_ps(p + k);
        b = _mm512_loadu_ps(p + k + 16);
        l = _mm512_min_ps(l, _mm512_min_ps(a, b));
        h = _mm512_max_ps(h, _mm512_max_ps(a, b));
        probe0 = _mm512_fmadd_ps(a, zero, probe0);
        probe1 = _mm512_fmadd_ps(b, zero, probe1);
      }
      mins[g] = l;
      maxs[g] = h;
    }
    const __m512 probe = _mm512_add_ps(probe0, probe1);
    if (_mm512_cmp_ps_mask(probe, probe, _CMP_UNORD_Q) != 0) return false;
    lo = reduce16(mins, [](__m512 a, __m512 b) { return _mm512_min_ps(a, b); });
    hi = reduce16(maxs, [](__m512 a, __m512 b) { return _mm512_max_ps(a, b); });
    lo = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(lo, zero, _CMP_LT_OQ), lo);
    hi = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(hi, zero, _CMP_GT_OQ), hi);
    return true;
  }

  /// Lanes 8..15 of v.
  static __m256 upper(__m512 v) noexcept { return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)); }

  /// make_params (quant_kernels.hpp) of 16 symmetric groups, lane by lane, in double:
  ///   full8 (qmin = -8): s = clip m / -8, m = hi if hi > -lo else lo; else s = clip max(hi, -lo) / qmax;
  /// then float(s), raised to +-FLT_MIN below it, and 0 for lo = hi = 0.
  static __m512 symmetric_scales(__m512 lo, __m512 hi, double clip, int qmin, int qmax) noexcept {
    const __m512d clip_d = _mm512_set1_pd(clip), sign_d = _mm512_set1_pd(-0.0);
    const __m512d divisor = _mm512_set1_pd(qmin == -8 ? -8.0 : static_cast<double>(qmax));
    auto half = [&](__m256 l8, __m256 h8) {
      const __m512d l = _mm512_cvtps_pd(l8), h = _mm512_cvtps_pd(h8);
      const __m512d neg_l = _mm512_castsi512_pd(_mm512_xor_si512(_mm512_castpd_si512(l), _mm512_castpd_si512(sign_d)));
      const __mmask8 hi_wins = _mm512_cmp_pd_mask(h, neg_l, _CMP_GT_OQ);
      const __m512d m = _mm512_mask_blend_pd(hi_wins, qmin == -8 ? l : neg_l, h);
      return _mm512_cvtpd_ps(_mm512_div_pd(_mm512_mul_pd(clip_d, m), divisor));
    };
    const __m256 s0 = half(_mm512_castps512_ps256(lo), _mm512_castps512_ps256(hi));
    const __m256 s1 = half(upper(lo), upper(hi));
    __m512i s = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_castps_si256(s0)), _mm256_castps_si256(s1), 1);
    const __m512i sign = _mm512_set1_epi32(static_cast<std::int32_t>(0x80000000u));
    const __m512i min_normal = _mm512_set1_epi32(0x00800000);  // FLT_MIN
    const __m512 magnitude = _mm512_castsi512_ps(_mm512_andnot_si512(sign, s));
    const __mmask16 small = _mm512_cmp_ps_mask(magnitude, _mm512_castsi512_ps(min_normal), _CMP_NGE_UQ);
    s = _mm512_mask_mov_epi32(s, small, _mm512_or_si512(min_normal, _mm512_and_si512(s, sign)));
    const __m512 zero = _mm512_setzero_ps();
    const __mmask16 empty = _mm512_cmp_ps_mask(lo, zero, _CMP_EQ_OQ) & _mm512_cmp_ps_mask(hi, zero, _CMP_EQ_OQ);
    return _mm512_maskz_mov_ps(static_cast<__mmask16>(~empty), _mm512_castsi512_ps(s));
  }

  /// inverse_scale: 1 / s, 0 for s = 0.
  static __m512 inverses(__m512 s) noexcept {
    return _mm512_maskz_div_ps(_mm512_cmp_ps_mask(s, _mm512_setzero_ps(), _CMP_NEQ_UQ), _mm512_set1_ps(1.0f), s);
  }

  /// 16 codes rne(clamp(x * inv, lo, hi)) of finite x (clamping before rounding, as quantize_one).
  static __m512i codes(const float* x, __m512 inv, __m512 lo, __m512 hi) noexcept {
    const __m512 y = _mm512_mul_ps(_mm512_loadu_ps(x), inv);
    return _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(y, lo), hi));
  }

  /// 64 bytes of the packed layout (element e at nibble e % 2 of byte e / 2) from 128 codes in
  /// -8..7, c[k] holding elements 16 k .. 16 k + 15.
  static void pack128(const __m512i* c, std::uint8_t* out) noexcept {
    const __m512i low_nibbles = _mm512_set1_epi8(0x0F);
    const __m512i weights = _mm512_set1_epi16(0x1001);  // bytes {1, 16}: lo + 16 hi per 16-bit lane
    auto nibbles = [&](const __m512i* q) {
      const __m512i p = _mm512_packs_epi16(_mm512_packs_epi32(q[0], q[1]), _mm512_packs_epi32(q[2], q[3]));
      return _mm512_maddubs_epi16(_mm512_and_si512(p, low_nibbles), weights);
    };
    // The packs work per 128-bit lane: word 8L + b of the packed bytes covers elements
    // 16b + 4L .. +3, which belong at word 4b + L.
    const __m512i order = _mm512_set_epi16(31, 23, 15, 7, 30, 22, 14, 6, 29, 21, 13, 5, 28, 20, 12, 4,
                                           27, 19, 11, 3, 26, 18, 10, 2, 25, 17, 9, 1, 24, 16, 8, 0);
    _mm512_storeu_si512(out, _mm512_permutexvar_epi16(order, _mm512_packus_epi16(nibbles(c), nibbles(c + 4))));
  }

  /// Keeps v in a register so that the compiler cannot contract the operation that made it into a
  /// later one (an FMA would change the clip-search errors' bits).
  static void no_contract(__m512& v) noexcept {
#  if defined(__GNUC__)
    __asm__("" : "+v"(v));
#  endif
  }

  /// Clip-search errors of 16 groups of G finite floats for the scales s (16 lanes), as
  /// clip_error_impl sums them: lane k of a group gets (y - rne(clamp(y)))^2 of its elements k,
  /// 16 + k, ... in float, then the 16 lanes go to double and are added pairwise (k + 8, k + 4,
  /// k + 2, k + 1). e0 / e1: the errors of groups 0..7 / 8..15 times s^2, in double.
  template <std::size_t G>
  static void clip_errors(const float* x, __m512 s, __m512 lo_b, __m512 hi_b, __m512d& e0, __m512d& e1) noexcept {
    alignas(64) float inv[16];
    _mm512_store_ps(inv, inverses(s));
    __m512d w[16];
    for (std::size_t g = 0; g < 16; ++g) {
      const __m512 v = _mm512_set1_ps(inv[g]);
      __m512 acc = _mm512_setzero_ps();
      for (std::size_t t = 0; t < G / 16; ++t) {
        __m512 y = _mm512_mul_ps(_mm512_loadu_ps(x + g * G + 16 * t), v);
        no_contract(y);
        const __m512 r = _mm512_roundscale_ps(_mm512_min_ps(_mm512_max_ps(y, lo_b), hi_b),
                                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m512 u = _mm512_sub_ps(y, r);
        __m512 u2 = _mm512_mul_ps(u, u);
        no_contract(u2);
        acc = t == 0 ? u2 : _mm512_add_ps(acc, u2);
      }
      w[g] = _mm512_add_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(acc)), _mm512_cvtps_pd(upper(acc)));
    }
    // Transposing pairwise sums: lanes k + 4, then k + 2, then k + 1 of each group's 8 doubles.
    for (int k = 0; k < 8; ++k)
      w[k] = _mm512_add_pd(_mm512_shuffle_f64x2(w[2 * k], w[2 * k + 1], 0x44), _mm512_shuffle_f64x2(w[2 * k], w[2 * k + 1], 0xEE));
    for (int k = 0; k < 4; ++k)
      w[k] = _mm512_add_pd(_mm512_shuffle_f64x2(w[2 * k], w[2 * k + 1], 0x88), _mm512_shuffle_f64x2(w[2 * k], w[2 * k + 1], 0xDD));
    for (int k = 0; k < 2; ++k)
      w[k] = _mm512_add_pd(_mm512_unpacklo_pd(w[2 * k], w[2 * k + 1]), _mm512_unpackhi_pd(w[2 * k], w[2 * k + 1]));
    // Lane 2 q + j now holds group 8 m + q + 4 j of w[m].
    const __m512i order = _mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7);
    const __m512d s0 = _mm512_cvtps_pd(_mm512_castps512_ps256(s)), s1 = _mm512_cvtps_pd(upper(s));
    e0 = _mm512_mul_pd(_mm512_permutexvar_pd(order, w[0]), _mm512_mul_pd(s0, s0));
    e1 = _mm512_mul_pd(_mm512_permutexvar_pd(order, w[1]), _mm512_mul_pd(s1, s1));
  }

  /// choose_group_params of 16 symmetric groups of G finite floats: the scales of ratios[0], or,
  /// with several candidates, those of least error (clip_errors; ties: the first, candidates of
  /// scale 0 skipped, no search for a group whose first scale is 0). chosen[g]: the ratio used.
  template <std::size_t G>
  static __m512 choose_scales(const float* x, __m512 lo, __m512 hi, const double* ratios, std::size_t count,
                              int qmin, int qmax, double* chosen) noexcept {
    __m512 best = symmetric_scales(lo, hi, ratios[0], qmin, qmax);
    __m512d r0 = _mm512_set1_pd(ratios[0]), r1 = r0;
    const __m512 zero = _mm512_setzero_ps();
    const __mmask16 searched = _mm512_cmp_ps_mask(best, zero, _CMP_NEQ_UQ);
    if (count > 1 && searched != 0) {
      const __m512 lo_b = _mm512_set1_ps(static_cast<float>(qmin)), hi_b = _mm512_set1_ps(static_cast<float>(qmax));
      __m512d best0 = _mm512_set1_pd(std::numeric_limits<double>::infinity()), best1 = best0;
      for (std::size_t c = 0; c < count; ++c) {
        const __m512 s = symmetric_scales(lo, hi, ratios[c], qmin, qmax);
        __m512d e0, e1;
        clip_errors<G>(x, s, lo_b, hi_b, e0, e1);
        const __mmask16 live = searched & _mm512_cmp_ps_mask(s, zero, _CMP_NEQ_UQ);
        const auto m0 = static_cast<__mmask8>(_mm512_cmp_pd_mask(e0, best0, _CMP_LT_OQ) & live);
        const auto m1 = static_cast<__mmask8>(_mm512_cmp_pd_mask(e1, best1, _CMP_LT_OQ) & (live >> 8));
        best0 = _mm512_mask_blend_pd(m0, best0, e0);
        best1 = _mm512_mask_blend_pd(m1, best1, e1);
        const __m512d ratio = _mm512_set1_pd(ratios[c]);
        r0 = _mm512_mask_blend_pd(m0, r0, ratio);
        r1 = _mm512_mask_blend_pd(m1, r1, ratio);
        best = _mm512_mask_blend_ps(static_cast<__mmask16>(m0 | m1 << 8), best, s);
      }
    }
    _mm512_storeu_pd(chosen, r0);
    _mm512_storeu_pd(chosen + 8, r1);
    return best;
  }

  /// fp16 bits of 16 floats, round to nearest even (vcvtps2ph): float_to_half_bits' bits for
  /// |v| <= 65504 (tests/arch/test_quant_arch.cpp compares them).
  static __m256i half_bits(__m512 v) noexcept { return _mm512_maskz_cvtps_ph(static_cast<__mmask16>(0xFFFF), v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static void half_bits16(const float* in, std::uint16_t* out) noexcept {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), half_bits(_mm512_loadu_ps(in)));
  }

  /// Whether all 16 lanes are fp16 scales: |v| <= 65504 (false for NaN), quantize_q4_0's check.
  static bool fit_half(__m512 v) noexcept {
    return _mm512_cmp_ps_mask(_mm512_abs_ps(v), _mm512_set1_ps(65504.0f), _CMP_LE_OQ) == 0xFFFF;
  }

  /// One step of quantize_groups (Q4_0 = false: 8 G bytes of packed codes at out) or of the Q4_0
  /// export (Q4_0 = true, G = 32: block g's qs at out + 18 g + 2) over 16 groups of G floats at x
  /// with a symmetric grid: scales[0..16) (choose_scales, chosen[0..16) their ratios),
  /// zero_scales += groups of scale 0. Q4_0: when all 16 scales fit fp16 (fit_half), also block
  /// g's d at out + 18 g (half_bits) and *halves = true, else *halves = false and d untouched.
  /// Returns false, writing nothing, when a NaN or an Inf is among the groups.
  template <bool Q4_0, std::size_t G>
  static bool quantize16(const float* x, const double* ratios, std::size_t count, int qmin, int qmax,
                         std::uint8_t* out, float* scales, double* chosen, std::size_t& zero_scales,
                         bool* halves = nullptr) noexcept {
    __m512 lo, hi;
    if (!ranges<G>(x, lo, hi)) return false;
    const __m512 s = choose_scales<G>(x, lo, hi, ratios, count, qmin, qmax, chosen);
    _mm512_storeu_ps(scales, s);
    zero_scales += static_cast<std::size_t>(
        std::popcount(static_cast<unsigned>(_mm512_cmp_ps_mask(s, _mm512_setzero_ps(), _CMP_EQ_OQ))));
    alignas(64) float inv[16];
    _mm512_store_ps(inv, inverses(s));
    const __m512 lo_b = _mm512_set1_ps(static_cast<float>(qmin)), hi_b = _mm512_set1_ps(static_cast<float>(qmax));
    if constexpr (Q4_0) {
      static_assert(G == 32, "a Q4_0 block holds 32 elements");
      const bool fits = fit_half(s);
      *halves = fits;
      alignas(32) std::uint16_t d[16];
      _mm256_store_si256(reinterpret_cast<__m256i*>(d), half_bits(s));
      for (std::size_t g = 0; g < 16; ++g) {
        const __m512 v = _mm512_set1_ps(inv[g]);
        q4_0_qs(codes(x + 32 * g, v, lo_b, hi_b), codes(x + 32 * g + 16, v, lo_b, hi_b), out + 18 * g + 2);
        if (fits) std::memcpy(out + 18 * g, d + g, 2);
      }
    } else {
      constexpr std::size_t per_group = G / 16;  // batches of 16 floats per group; G batches in all
      for (std::size_t t0 = 0; t0 < G; t0 += 8) {
        __m512i c[8];
        for (std::size_t k = 0; k < 8; ++k)
          c[k] = codes(x + 16 * (t0 + k), _mm512_set1_ps(inv[(t0 + k) / per_group]), lo_b, hi_b);
        pack128(c, out + 8 * t0);
      }
    }
    return true;
  }

  /// Writes 64 codes (four int32 registers, each code in -8..7) as 32 packed bytes (Packed) or
  /// as 64 int8 codes.
  template <bool Packed>
  static void store_codes4(__m512i a, __m512i b, __m512i c, __m512i d, void* out) noexcept {
    // packs work per 128-bit lane: lane L holds dwords a[4L..], b[4L..], c[4L..], d[4L..].
    const __m512i p = _mm512_permutexvar_epi32(
        _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15),
        _mm512_packs_epi16(_mm512_packs_epi32(a, b), _mm512_packs_epi32(c, d)));
    if constexpr (Packed) {
      // 16-bit lane w = c0 | c1 << 8  ->  (c0 & 0xF) | (c1 & 0xF) << 4.
      const __m512i r = _mm512_or_si512(_mm512_and_si512(p, _mm512_set1_epi16(0x000F)),
                                        _mm512_and_si512(_mm512_srli_epi16(p, 4), _mm512_set1_epi16(0x00F0)));
      _mm256_storeu_si256(static_cast<__m256i*>(out), _mm512_cvtepi16_epi8(r));
    } else {
      _mm512_storeu_si512(out, p);
    }
  }

  /// 16 codes (int32) from 8 packed bytes: duplicate each byte, widen, move the wanted nibble to
  /// the top, shift back signed.
  static __m512i load_codes(const std::uint8_t* bytes) noexcept {
    const __m128i dup = _mm_unpacklo_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(bytes)),
                                          _mm_loadl_epi64(reinterpret_cast<const __m128i*>(bytes)));
    const __m512i shifts = _mm512_setr_epi32(28, 24, 28, 24, 28, 24, 28, 24, 28, 24, 28, 24, 28, 24, 28, 24);
    return _mm512_srai_epi32(_mm512_sllv_epi32(_mm512_cvtepu8_epi32(dup), shifts), 28);
  }

  /// Non-temporal store of 16 floats (p 64-byte aligned).
  static void stream(float* p, __m512 v) noexcept { _mm512_stream_ps(p, v); }
  /// Orders earlier non-temporal stores before later stores.
  static void fence() noexcept { _mm_sfence(); }
  static constexpr bool has_clean_row = true;
  static constexpr bool has_16_groups = true;

  /// The fast loop of one clean row (quantize_clean_row in quant_kernels.hpp): 128 floats per step
  /// -> 64 bytes, codes rne(x * inv) clamped after the saturating int32 -> int8 packs (the same as
  /// clamping before rounding: the bounds are integers; needs every |x * inv| < 2^30). The same
  /// step takes the min / max of the same span of next_row (if any) and prefetches 16 KiB ahead
  /// along it, so the memory reads of the next row overlap this row's arithmetic; next_lo /
  /// next_hi / next_clean get that range (with 0) and whether it was free of NaN and Inf.
  /// nt: non-temporal stores (out 64-byte aligned). Returns the elements done (a multiple of 128).
  static std::size_t clean_row(const float* x, std::size_t n, float inv, int qmin, int qmax, std::uint8_t* out,
                               const float* next_row, bool nt, float& next_lo, float& next_hi,
                               bool& next_clean) noexcept {
    const __m512 inv_v = _mm512_set1_ps(inv);
    const __m512i lo8 = _mm512_set1_epi8(static_cast<char>(qmin)), hi8 = _mm512_set1_epi8(static_cast<char>(qmax));
    const __m512i low_nibbles = _mm512_set1_epi8(0x0F);
    const __m512i weights = _mm512_set1_epi16(0x1001);  // bytes {1, 16}: lo + 16 hi per 16-bit lane
    // After the packs, lane L of each register holds elements 4L..4L+3 of its eight source batches;
    // word 8L + b of the packed bytes covers elements 16b + 4L .. +3, which belong at word 4b + L.
    const __m512i order = _mm512_set_epi16(31, 23, 15, 7, 30, 22, 14, 6, 29, 21, 13, 5, 28, 20, 12, 4,
                                           27, 19, 11, 3, 26, 18, 10, 2, 25, 17, 9, 1, 24, 16, 8, 0);
    auto code = [&](const float* p) { return _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(p), inv_v)); };
    auto nibbles = [&](__m512i a, __m512i b, __m512i c, __m512i d) {
      const __m512i p = _mm512_packs_epi16(_mm512_packs_epi32(a, b), _mm512_packs_epi32(c, d));
      const __m512i clamped = _mm512_max_epi8(_mm512_min_epi8(p, hi8), lo8);
      return _mm512_maddubs_epi16(_mm512_and_si512(clamped, low_nibbles), weights);
    };
    const __m512 zero = _mm512_setzero_ps();
    __m512 lo0 = zero, hi0 = zero, lo1 = zero, hi1 = zero, probe0 = zero, probe1 = zero;
    std::size_t i = 0;
    for (; i + 128 <= n; i += 128) {
      if (next_row != nullptr) {
        // Demand loads alone keep too few cache misses in flight behind this loop's arithmetic
        // (the distance is measured in docs/performance.md). Prefetches past the input never fault.
        for (std::size_t k = 0; k < 128; k += 16)
          _mm_prefetch(reinterpret_cast<const char*>(next_row + i + 4096 + k), _MM_HINT_T0);
        for (std::size_t k = 0; k < 128; k += 32) {
          const __m512 a = _mm512_loadu_ps(next_row + i + k), b = _mm512_loadu_ps(next_row + i + k + 16);
          lo0 = _mm512_min_ps(lo0, a);
          hi0 = _mm512_max_ps(hi0, a);
          lo1 = _mm512_min_ps(lo1, b);
          hi1 = _mm512_max_ps(hi1, b);
          probe0 = _mm512_fmadd_ps(a, zero, probe0);  // NaN once a NaN or an Inf went by
          probe1 = _mm512_fmadd_ps(b, zero, probe1);
        }
      }
      const float* p = x + i;
      const __m512i r0 = nibbles(code(p), code(p + 16), code(p + 32), code(p + 48));
      const __m512i r1 = nibbles(code(p + 64), code(p + 80), code(p + 96), code(p + 112));
      const __m512i bytes = _mm512_permutexvar_epi16(order, _mm512_packus_epi16(r0, r1));
      if (nt)
        _mm512_stream_si512(reinterpret_cast<__m512i*>(out + i / 2), bytes);
      else
        _mm512_storeu_si512(out + i / 2, bytes);
    }
    if (next_row != nullptr) {
      const __m512 probe = _mm512_add_ps(probe0, probe1);
      next_lo = _mm512_reduce_min_ps(_mm512_min_ps(lo0, lo1));  // exact: any order gives these values
      next_hi = _mm512_reduce_max_ps(_mm512_max_ps(hi0, hi1));
      constexpr float limit = std::numeric_limits<float>::max();
      next_clean = _mm512_cmp_ps_mask(probe, probe, _CMP_UNORD_Q) == 0 && next_hi <= limit && next_lo >= -limit;
    }
    return i;
  }

  /// qs of a ggml Q4_0 block from the codes of its elements 0..15 (a) and 16..31 (b), in -8..7:
  /// qs[j] = (a_j + 8) | (b_j + 8) << 4.
  static void q4_0_qs(__m512i a, __m512i b, std::uint8_t* qs) noexcept {
    const __m512i u = _mm512_add_epi32(_mm512_add_epi32(a, _mm512_slli_epi32(b, 4)), _mm512_set1_epi32(136));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(qs), _mm512_cvtepi32_epi8(u));  // not vpmovdb to memory: slow
  }
};
#  if defined(__GNUC__) && !defined(__clang__)
#    pragma GCC diagnostic pop
#  endif
// ---- end of the INT4 quantise section -----------------------------------------------------------
/// The quantise ops of a tag (std::type_identity; decltype only).
template <class = void>
std::type_identity<avx512_quant_ops> quant_ops(xsimd::avx512bw) noexcept;

template <bool Vnni>
std::type_identity<avx512_int4_ops<Vnni>> int4_ops(xsimd::avx512bw) noexcept;  // decltype only

}  // namespace
}  // namespace detail::arch
SINGLEQUANT_END_NAMESPACE

#endif
#endif  // SINGLEQUANT_DETAIL_ARCH_AVX512_HPP
