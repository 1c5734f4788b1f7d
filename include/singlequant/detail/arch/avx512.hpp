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
// int4_ops<Vnni>(tag) names the struct of a tag (std::type_identity). Compiled only when the
// translation unit has the ISA's flags.
#ifndef SINGLEQUANT_DETAIL_ARCH_AVX512_HPP
#define SINGLEQUANT_DETAIL_ARCH_AVX512_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>
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
  static constexpr std::size_t tile_rows = 4;    // activation rows per register tile
  static constexpr bool weights_outer = false;  // loop order of the tile (int4_gemm_kernels.hpp)
  static constexpr std::size_t tile_panels = 4;  // 16-row weight panels per register tile

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
  static void fold(float* c, const float* s, ivec acc) noexcept {
    // maskz: GCC 12's _mm512_cvtepi32_ps passes _mm512_undefined_ps(), a -Wmaybe-uninitialized false positive.
    _mm512_storeu_ps(c, _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(static_cast<__mmask16>(0xFFFF), acc), _mm512_loadu_ps(s), _mm512_loadu_ps(c)));
  }
};

template <bool Vnni>
std::type_identity<avx512_int4_ops<Vnni>> int4_ops(xsimd::avx512bw) noexcept;  // decltype only

}  // namespace
}  // namespace detail::arch
SINGLEQUANT_END_NAMESPACE

#endif
#endif  // SINGLEQUANT_DETAIL_ARCH_AVX512_HPP
