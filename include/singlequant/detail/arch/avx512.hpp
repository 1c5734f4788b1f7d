// singlequant/detail/arch/avx512.hpp - AVX-512BW intrinsics of the INT4 GEMM (with and without VNNI).
//
// The ops structs of detail/arch/ all have one shape, which the ISA-neutral kernel in
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
// Compiled only when the translation unit has the ISA's flags (the kernel picks the struct by arch tag).
#ifndef SINGLEQUANT_DETAIL_ARCH_AVX512_HPP
#define SINGLEQUANT_DETAIL_ARCH_AVX512_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../../config.hpp"

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

}  // namespace
}  // namespace detail::arch
SINGLEQUANT_END_NAMESPACE

#endif
#endif  // SINGLEQUANT_DETAIL_ARCH_AVX512_HPP
