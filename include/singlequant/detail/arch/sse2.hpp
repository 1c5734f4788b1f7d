// singlequant/detail/arch/sse2.hpp - 128-bit intrinsics of the kernels (the sse2 and sse4_2 levels:
// SSE2, and SSSE3 for the INT4 GEMM ops, whose shape is described in avx512.hpp).
//
// xmm_vector<T, Arch>: one 128-bit register of T as a column tile, for the parts of a kernel that
// are narrower than Arch's own registers (a 4-float block on AVX2 or AVX-512). Raw intrinsics, not
// xsimd::batch<T, sse2>: xsimd's functions are plain inline templates of the batch's arch, so an
// AVX-512 translation unit's copy of batch<float, sse2>::operator+ could be the one the linker keeps
// for the SSE2 kernels. These wrappers are templated on the caller's Arch (per-ISA symbols) and
// always inlined. Every operation is the IEEE one of the scalar code (one rounding each). The square
// transposes of the Givens tiles are overloads on the tag xsimd::sse2 (fallbacks: generic.hpp).
#ifndef SINGLEQUANT_DETAIL_ARCH_SSE2_HPP
#define SINGLEQUANT_DETAIL_ARCH_SSE2_HPP

#include <cstddef>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "../../config.hpp"

SINGLEQUANT_BEGIN_NAMESPACE
namespace detail::arch {

template <class T, class Arch>
struct xmm_vector;  // defined for float and double when the translation unit has SSE2

#if XSIMD_WITH_SSE2
template <class Arch>
struct xmm_vector<float, Arch> {
  static constexpr std::size_t size = 4;
  __m128 v;
  static SINGLEQUANT_INLINE xmm_vector load(const float* p) noexcept { return {_mm_loadu_ps(p)}; }
  static SINGLEQUANT_INLINE void store(float* p, xmm_vector x) noexcept { _mm_storeu_ps(p, x.v); }
  static SINGLEQUANT_INLINE xmm_vector broadcast(float s) noexcept { return {_mm_set1_ps(s)}; }
  /// Exact negation (sign-bit flip, -0 for +0).
  static SINGLEQUANT_INLINE xmm_vector negate(xmm_vector x) noexcept {
    return {_mm_xor_ps(x.v, _mm_set1_ps(-0.0f))};
  }
  /// x y + z, fused where the translation unit has FMA (as xsimd::fma on the wider batches).
  static SINGLEQUANT_INLINE xmm_vector fma(xmm_vector x, xmm_vector y, xmm_vector z) noexcept {
#  ifdef __FMA__
    return {_mm_fmadd_ps(x.v, y.v, z.v)};
#  else
    return {_mm_add_ps(_mm_mul_ps(x.v, y.v), z.v)};
#  endif
  }
  /// x y - z, fused where the translation unit has FMA.
  static SINGLEQUANT_INLINE xmm_vector fms(xmm_vector x, xmm_vector y, xmm_vector z) noexcept {
#  ifdef __FMA__
    return {_mm_fmsub_ps(x.v, y.v, z.v)};
#  else
    return {_mm_sub_ps(_mm_mul_ps(x.v, y.v), z.v)};
#  endif
  }
  friend SINGLEQUANT_INLINE xmm_vector operator+(xmm_vector a, xmm_vector b) noexcept {
    return {_mm_add_ps(a.v, b.v)};
  }
  friend SINGLEQUANT_INLINE xmm_vector operator-(xmm_vector a, xmm_vector b) noexcept {
    return {_mm_sub_ps(a.v, b.v)};
  }
  friend SINGLEQUANT_INLINE xmm_vector operator*(xmm_vector a, xmm_vector b) noexcept {
    return {_mm_mul_ps(a.v, b.v)};
  }
  SINGLEQUANT_INLINE xmm_vector& operator+=(xmm_vector b) noexcept { return *this = *this + b; }
};

template <class Arch>
struct xmm_vector<double, Arch> {
  static constexpr std::size_t size = 2;
  __m128d v;
  static SINGLEQUANT_INLINE xmm_vector load(const double* p) noexcept { return {_mm_loadu_pd(p)}; }
  static SINGLEQUANT_INLINE void store(double* p, xmm_vector x) noexcept { _mm_storeu_pd(p, x.v); }
  static SINGLEQUANT_INLINE xmm_vector broadcast(double s) noexcept { return {_mm_set1_pd(s)}; }
  static SINGLEQUANT_INLINE xmm_vector negate(xmm_vector x) noexcept {
    return {_mm_xor_pd(x.v, _mm_set1_pd(-0.0))};
  }
  static SINGLEQUANT_INLINE xmm_vector fma(xmm_vector x, xmm_vector y, xmm_vector z) noexcept {
#  ifdef __FMA__
    return {_mm_fmadd_pd(x.v, y.v, z.v)};
#  else
    return {_mm_add_pd(_mm_mul_pd(x.v, y.v), z.v)};
#  endif
  }
  static SINGLEQUANT_INLINE xmm_vector fms(xmm_vector x, xmm_vector y, xmm_vector z) noexcept {
#  ifdef __FMA__
    return {_mm_fmsub_pd(x.v, y.v, z.v)};
#  else
    return {_mm_sub_pd(_mm_mul_pd(x.v, y.v), z.v)};
#  endif
  }
  friend SINGLEQUANT_INLINE xmm_vector operator+(xmm_vector a, xmm_vector b) noexcept {
    return {_mm_add_pd(a.v, b.v)};
  }
  friend SINGLEQUANT_INLINE xmm_vector operator-(xmm_vector a, xmm_vector b) noexcept {
    return {_mm_sub_pd(a.v, b.v)};
  }
  friend SINGLEQUANT_INLINE xmm_vector operator*(xmm_vector a, xmm_vector b) noexcept {
    return {_mm_mul_pd(a.v, b.v)};
  }
  SINGLEQUANT_INLINE xmm_vector& operator+=(xmm_vector b) noexcept { return *this = *this + b; }
};
/// 4 x 4 float transpose in place at p (rows ss apart); loads the whole square before it stores.
template <class Arch>
SINGLEQUANT_INLINE void transpose_square(float* p, std::size_t ss, xsimd::sse2) noexcept {
  const __m128 r0 = _mm_loadu_ps(p), r1 = _mm_loadu_ps(p + ss);
  const __m128 r2 = _mm_loadu_ps(p + 2 * ss), r3 = _mm_loadu_ps(p + 3 * ss);
  const __m128 t0 = _mm_unpacklo_ps(r0, r1), t1 = _mm_unpackhi_ps(r0, r1);  // a0 b0 a1 b1 | a2 b2 a3 b3
  const __m128 t2 = _mm_unpacklo_ps(r2, r3), t3 = _mm_unpackhi_ps(r2, r3);
  _mm_storeu_ps(p, _mm_movelh_ps(t0, t2));
  _mm_storeu_ps(p + ss, _mm_movehl_ps(t2, t0));
  _mm_storeu_ps(p + 2 * ss, _mm_movelh_ps(t1, t3));
  _mm_storeu_ps(p + 3 * ss, _mm_movehl_ps(t3, t1));
}
/// 2 x 2 double transpose in place.
template <class Arch>
SINGLEQUANT_INLINE void transpose_square(double* p, std::size_t ss, xsimd::sse2) noexcept {
  const __m128d r0 = _mm_loadu_pd(p), r1 = _mm_loadu_pd(p + ss);
  _mm_storeu_pd(p, _mm_unpacklo_pd(r0, r1));
  _mm_storeu_pd(p + ss, _mm_unpackhi_pd(r0, r1));
}
#endif

}  // namespace detail::arch
SINGLEQUANT_END_NAMESPACE

#if defined(__SSE2__)
#  include <emmintrin.h>
#  if defined(__SSSE3__)
#    include <tmmintrin.h>
#  endif

SINGLEQUANT_BEGIN_NAMESPACE
namespace detail::arch {
namespace {

struct sse_int4_common {
  using ivec = __m128i;
  using wvec = __m128i;
  static constexpr std::size_t lanes = 4;
  static constexpr std::size_t tile_rows = 2;
  static constexpr bool weights_outer = true;  // loop order of the tile (int4_gemm_kernels.hpp)
  static constexpr std::size_t tile_panels = 1;

  static ivec set1(std::int32_t v) noexcept { return _mm_set1_epi32(v); }
  static void unpack(const std::uint8_t* p, wvec& lo, wvec& hi) noexcept {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i mask = _mm_set1_epi8(0x0F);
    lo = _mm_and_si128(raw, mask);
    hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
  }
  static void fold(float* c, const float* s, ivec acc) noexcept {
    _mm_storeu_ps(c, _mm_add_ps(_mm_mul_ps(_mm_cvtepi32_ps(acc), _mm_loadu_ps(s)), _mm_loadu_ps(c)));
  }
  static __m128i broadcast4(const std::int8_t* a) noexcept {
    std::int32_t v = 0;
    std::memcpy(&v, a, 4);
    return _mm_set1_epi32(v);
  }
};

/// SSE2 has no u8 x s8 multiply: even and odd bytes are widened to int16 and pmaddwd'ed
/// (lane = w0 a0 + w2 a2 + w1 a1 + w3 a3, exact).
struct sse2_int4_ops : sse_int4_common {
  static __m128i dot4(__m128i w, __m128i b) noexcept {
    const __m128i w_even = _mm_and_si128(w, _mm_set1_epi16(0x00FF));
    const __m128i w_odd = _mm_srli_epi16(w, 8);
    const __m128i b_even = _mm_srai_epi16(_mm_slli_epi16(b, 8), 8);
    const __m128i b_odd = _mm_srai_epi16(b, 8);
    return _mm_add_epi32(_mm_madd_epi16(w_even, b_even), _mm_madd_epi16(w_odd, b_odd));
  }
  static ivec dot8(ivec acc, wvec lo, wvec hi, const std::int8_t* a) noexcept {
    return _mm_add_epi32(acc, _mm_add_epi32(dot4(lo, broadcast4(a)), dot4(hi, broadcast4(a + 4))));
  }
};

#  if defined(__SSSE3__)
/// pmaddubsw + pmaddwd, exact as in the AVX2 path.
struct ssse3_int4_ops : sse_int4_common {
  static ivec dot8(ivec acc, wvec lo, wvec hi, const std::int8_t* a) noexcept {
    const __m128i pairs = _mm_add_epi16(_mm_maddubs_epi16(lo, broadcast4(a)), _mm_maddubs_epi16(hi, broadcast4(a + 4)));
    return _mm_add_epi32(acc, _mm_madd_epi16(pairs, _mm_set1_epi16(1)));
  }
};
#  endif

template <bool Vnni>
std::type_identity<sse2_int4_ops> int4_ops(xsimd::sse2) noexcept;  // decltype only
#  if defined(__SSSE3__)
template <bool Vnni>
std::type_identity<ssse3_int4_ops> int4_ops(xsimd::ssse3) noexcept;
#  endif

}  // namespace
}  // namespace detail::arch
SINGLEQUANT_END_NAMESPACE

#endif
// ---- INT4 quantise (detail/quant_kernels.hpp) ---------------------------------------------------
#if defined(__SSE2__)
#  include <emmintrin.h>

SINGLEQUANT_BEGIN_NAMESPACE
namespace detail::arch {
namespace {

/// The packing and streaming of quant_kernels.hpp on 128-bit registers (SSE2 only).
struct sse2_quant_ops {
  /// Writes 16 codes (four int32 registers, each code in -8..7) as 8 packed bytes (Packed) or as
  /// 16 int8 codes.
  template <bool Packed>
  static void store_codes4(__m128i a, __m128i b, __m128i c, __m128i d, void* out) noexcept {
    const __m128i p = _mm_packs_epi16(_mm_packs_epi32(a, b), _mm_packs_epi32(c, d));
    if constexpr (Packed) {
      const __m128i r = _mm_or_si128(_mm_and_si128(p, _mm_set1_epi16(0x000F)),
                                     _mm_and_si128(_mm_srli_epi16(p, 4), _mm_set1_epi16(0x00F0)));
      _mm_storel_epi64(static_cast<__m128i*>(out), _mm_packus_epi16(r, r));
    } else {
      _mm_storeu_si128(static_cast<__m128i*>(out), p);
    }
  }
  /// 4 codes (int32) from 2 packed bytes.
  static __m128i load_codes(const std::uint8_t* bytes) noexcept {
    std::uint16_t pair;
    std::memcpy(&pair, bytes, 2);
    const __m128i b = _mm_cvtsi32_si128(pair);
    const __m128i zero = _mm_setzero_si128();
    // 16-bit lanes {b0, b0, b1, b1}; multiply by 2^12 / 2^8 so the wanted nibble is in bits 12..15.
    const __m128i w = _mm_mullo_epi16(_mm_unpacklo_epi8(_mm_unpacklo_epi8(b, b), zero),
                                      _mm_setr_epi16(4096, 256, 4096, 256, 4096, 256, 4096, 256));
    return _mm_srai_epi32(_mm_unpacklo_epi16(zero, w), 28);
  }
  /// Non-temporal store of 4 floats (p 16-byte aligned).
  static void stream(float* p, __m128 v) noexcept { _mm_stream_ps(p, v); }
  /// Orders earlier non-temporal stores before later stores (any x86 ISA level).
  static void fence() noexcept { _mm_sfence(); }
  static constexpr bool has_clean_row = false;  // clean_row: avx512.hpp only
  static constexpr bool has_16_groups = false;  // quantize16: avx512.hpp only
};

/// The quantise ops of a tag (std::type_identity; decltype only): SSE2 up to SSE4.2.
template <class = void>  // a template: a declared, never defined function would warn (unused)
std::type_identity<sse2_quant_ops> quant_ops(xsimd::sse2) noexcept;

}  // namespace
}  // namespace detail::arch
SINGLEQUANT_END_NAMESPACE

#endif
// ---- end of the INT4 quantise section -----------------------------------------------------------
#endif  // SINGLEQUANT_DETAIL_ARCH_SSE2_HPP
