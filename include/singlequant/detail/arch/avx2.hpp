// singlequant/detail/arch/avx2.hpp - 256-bit intrinsics of the kernels (the avx2 level: AVX, AVX2,
// FMA).
//
// ymm_vector<T, Arch>: one 256-bit register of T as a column tile, for the parts of an AVX-512
// kernel narrower than a 512-bit register (an 8-float block; chosen by narrow.hpp). The FWHT's
// first level folded into the loads and the square transposes of the Givens tiles are overloads on
// the tag xsimd::avx (fallbacks: generic.hpp). The INT4 GEMM ops (shape: avx512.hpp) need AVX2 and
// FMA. Raw intrinsics templated on the caller's Arch, always inlined, for the reason given in
// sse2.hpp (ODR). Every floating-point operation is the IEEE one of the scalar code (one rounding
// each).
#ifndef SINGLEQUANT_DETAIL_ARCH_AVX2_HPP
#define SINGLEQUANT_DETAIL_ARCH_AVX2_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "../../config.hpp"

SINGLEQUANT_BEGIN_NAMESPACE
namespace detail::arch {

template <class T, class Arch>
struct ymm_vector;  // defined for float and double when the translation unit has AVX

/// Tuning trait of the tag (fallback: generic.hpp): AVX2 with FMA3 has a fused multiply-add.
template <class = void>
constexpr bool has_fma(xsimd::fma3<xsimd::avx2>) noexcept {
  return true;
}

#if XSIMD_WITH_AVX
template <class Arch>
struct ymm_vector<float, Arch> {
  static constexpr std::size_t size = 8;
  __m256 v;
  static SINGLEQUANT_INLINE ymm_vector load(const float* p) noexcept { return {_mm256_loadu_ps(p)}; }
  static SINGLEQUANT_INLINE void store(float* p, ymm_vector x) noexcept { _mm256_storeu_ps(p, x.v); }
  static SINGLEQUANT_INLINE ymm_vector broadcast(float s) noexcept { return {_mm256_set1_ps(s)}; }
  /// Exact negation (sign-bit flip, -0 for +0).
  static SINGLEQUANT_INLINE ymm_vector negate(ymm_vector x) noexcept {
    return {_mm256_xor_ps(x.v, _mm256_set1_ps(-0.0f))};
  }
  /// x y + z, fused where the translation unit has FMA (as xsimd::fma on the wider batches).
  static SINGLEQUANT_INLINE ymm_vector fma(ymm_vector x, ymm_vector y, ymm_vector z) noexcept {
#  ifdef __FMA__
    return {_mm256_fmadd_ps(x.v, y.v, z.v)};
#  else
    return {_mm256_add_ps(_mm256_mul_ps(x.v, y.v), z.v)};
#  endif
  }
  /// x y - z, fused where the translation unit has FMA.
  static SINGLEQUANT_INLINE ymm_vector fms(ymm_vector x, ymm_vector y, ymm_vector z) noexcept {
#  ifdef __FMA__
    return {_mm256_fmsub_ps(x.v, y.v, z.v)};
#  else
    return {_mm256_sub_ps(_mm256_mul_ps(x.v, y.v), z.v)};
#  endif
  }
  friend SINGLEQUANT_INLINE ymm_vector operator+(ymm_vector a, ymm_vector b) noexcept {
    return {_mm256_add_ps(a.v, b.v)};
  }
  friend SINGLEQUANT_INLINE ymm_vector operator-(ymm_vector a, ymm_vector b) noexcept {
    return {_mm256_sub_ps(a.v, b.v)};
  }
  friend SINGLEQUANT_INLINE ymm_vector operator*(ymm_vector a, ymm_vector b) noexcept {
    return {_mm256_mul_ps(a.v, b.v)};
  }
  SINGLEQUANT_INLINE ymm_vector& operator+=(ymm_vector b) noexcept { return *this = *this + b; }
};

template <class Arch>
struct ymm_vector<double, Arch> {
  static constexpr std::size_t size = 4;
  __m256d v;
  static SINGLEQUANT_INLINE ymm_vector load(const double* p) noexcept { return {_mm256_loadu_pd(p)}; }
  static SINGLEQUANT_INLINE void store(double* p, ymm_vector x) noexcept { _mm256_storeu_pd(p, x.v); }
  static SINGLEQUANT_INLINE ymm_vector broadcast(double s) noexcept { return {_mm256_set1_pd(s)}; }
  static SINGLEQUANT_INLINE ymm_vector negate(ymm_vector x) noexcept {
    return {_mm256_xor_pd(x.v, _mm256_set1_pd(-0.0))};
  }
  static SINGLEQUANT_INLINE ymm_vector fma(ymm_vector x, ymm_vector y, ymm_vector z) noexcept {
#  ifdef __FMA__
    return {_mm256_fmadd_pd(x.v, y.v, z.v)};
#  else
    return {_mm256_add_pd(_mm256_mul_pd(x.v, y.v), z.v)};
#  endif
  }
  static SINGLEQUANT_INLINE ymm_vector fms(ymm_vector x, ymm_vector y, ymm_vector z) noexcept {
#  ifdef __FMA__
    return {_mm256_fmsub_pd(x.v, y.v, z.v)};
#  else
    return {_mm256_sub_pd(_mm256_mul_pd(x.v, y.v), z.v)};
#  endif
  }
  friend SINGLEQUANT_INLINE ymm_vector operator+(ymm_vector a, ymm_vector b) noexcept {
    return {_mm256_add_pd(a.v, b.v)};
  }
  friend SINGLEQUANT_INLINE ymm_vector operator-(ymm_vector a, ymm_vector b) noexcept {
    return {_mm256_sub_pd(a.v, b.v)};
  }
  friend SINGLEQUANT_INLINE ymm_vector operator*(ymm_vector a, ymm_vector b) noexcept {
    return {_mm256_mul_pd(a.v, b.v)};
  }
  SINGLEQUANT_INLINE ymm_vector& operator+=(ymm_vector b) noexcept { return *this = *this + b; }
};
#endif


#if XSIMD_WITH_AVX
#  if defined(__GNUC__) || defined(__clang__)
/// The first FWHT level of the 8 floats at p with the lane exchange done by the load unit
/// (movsldup / movshdup from memory; see avx512.hpp).
template <class Arch>
SINGLEQUANT_INLINE xsimd::batch<float, Arch> load_first_level(const float* p, const xsimd::batch<float, Arch>& sign1,
                                                              xsimd::avx) noexcept {
  __m256 even, odd;
  __asm__("vmovsldup %1, %0" : "=x"(even) : "m"(*reinterpret_cast<const __m256_u*>(p)));
  __asm__("vmovshdup %1, %0" : "=x"(odd) : "m"(*reinterpret_cast<const __m256_u*>(p)));
  return xsimd::fma(xsimd::batch<float, Arch>(odd), sign1, xsimd::batch<float, Arch>(even));
}
#  endif

/// 8 x 8 float transpose in place at p (rows ss apart); loads the whole square before it stores.
template <class Arch>
SINGLEQUANT_INLINE void transpose_square(float* p, std::size_t ss, xsimd::avx) noexcept {
  __m256 t[8], u[8];
  for (std::size_t k = 0; k < 4; ++k) {
    const __m256 a = _mm256_loadu_ps(p + 2 * k * ss), b = _mm256_loadu_ps(p + (2 * k + 1) * ss);
    t[2 * k] = _mm256_unpacklo_ps(a, b);  // per 128-bit half h: a(4h) b(4h) a(4h+1) b(4h+1)
    t[2 * k + 1] = _mm256_unpackhi_ps(a, b);
  }
  for (std::size_t g = 0; g < 2; ++g) {  // rows 4g..4g+3 -> u[4g + m] half h = column 4h + m
    u[4 * g + 0] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
  for (std::size_t m = 0; m < 4; ++m) {
    _mm256_storeu_ps(p + m * ss, _mm256_permute2f128_ps(u[m], u[4 + m], 0x20));
    _mm256_storeu_ps(p + (4 + m) * ss, _mm256_permute2f128_ps(u[m], u[4 + m], 0x31));
  }
}
/// 4 x 4 double transpose in place.
template <class Arch>
SINGLEQUANT_INLINE void transpose_square(double* p, std::size_t ss, xsimd::avx) noexcept {
  const __m256d r0 = _mm256_loadu_pd(p), r1 = _mm256_loadu_pd(p + ss);
  const __m256d r2 = _mm256_loadu_pd(p + 2 * ss), r3 = _mm256_loadu_pd(p + 3 * ss);
  const __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);  // a0 b0 | a2 b2
  const __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
  _mm256_storeu_pd(p, _mm256_permute2f128_pd(t0, t2, 0x20));
  _mm256_storeu_pd(p + ss, _mm256_permute2f128_pd(t1, t3, 0x20));
  _mm256_storeu_pd(p + 2 * ss, _mm256_permute2f128_pd(t0, t2, 0x31));
  _mm256_storeu_pd(p + 3 * ss, _mm256_permute2f128_pd(t1, t3, 0x31));
}
#endif  // XSIMD_WITH_AVX

}  // namespace detail::arch
SINGLEQUANT_END_NAMESPACE

#if defined(__AVX2__) && defined(__FMA__)
#  include <immintrin.h>

SINGLEQUANT_BEGIN_NAMESPACE
namespace detail::arch {
namespace {

/// vpmaddubsw (u8 weights x s8 codes, exact: at most 480 in an int16 after adding the two nibble
/// halves) then vpmaddwd by 1 into int32.
struct avx2_int4_ops {
  using ivec = __m256i;
  using wvec = __m256i;
  static constexpr std::size_t lanes = 8;
  static constexpr std::size_t tile_rows = 4;    // 4 x 2 accumulators + weights fit 16 registers
  static constexpr bool weights_outer = true;  // loop order of the tile (int4_gemm_kernels.hpp)
  static constexpr std::size_t tile_panels = 1;

  static ivec set1(std::int32_t v) noexcept { return _mm256_set1_epi32(v); }
  static void unpack(const std::uint8_t* p, wvec& lo, wvec& hi) noexcept {
    const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const __m256i mask = _mm256_set1_epi8(0x0F);
    lo = _mm256_and_si256(raw, mask);
    hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), mask);
  }
  static ivec dot8(ivec acc, wvec lo, wvec hi, const std::int8_t* a) noexcept {
    std::int32_t a0 = 0, a1 = 0;
    std::memcpy(&a0, a, 4);
    std::memcpy(&a1, a + 4, 4);
    const __m256i pairs = _mm256_add_epi16(_mm256_maddubs_epi16(lo, _mm256_set1_epi32(a0)),
                                           _mm256_maddubs_epi16(hi, _mm256_set1_epi32(a1)));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
  }
  static void fold(float* c, const float* s, ivec acc) noexcept {
    _mm256_storeu_ps(c, _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_loadu_ps(s), _mm256_loadu_ps(c)));
  }
};

template <bool Vnni>
std::type_identity<avx2_int4_ops> int4_ops(xsimd::avx2) noexcept;  // decltype only

}  // namespace
}  // namespace detail::arch
SINGLEQUANT_END_NAMESPACE

#endif
// ---- INT4 quantise (detail/quant_kernels.hpp) ---------------------------------------------------
#if defined(__AVX2__)
#  include <immintrin.h>

SINGLEQUANT_BEGIN_NAMESPACE
namespace detail::arch {
namespace {

/// The packing and streaming of quant_kernels.hpp on 256-bit registers.
struct avx2_quant_ops {
  /// Writes 32 codes (four int32 registers, each code in -8..7) as 16 packed bytes (Packed) or as
  /// 32 int8 codes.
  template <bool Packed>
  static void store_codes4(__m256i a, __m256i b, __m256i c, __m256i d, void* out) noexcept {
    const __m256i p = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d)),
                                                  _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    if constexpr (Packed) {
      const __m256i r = _mm256_or_si256(_mm256_and_si256(p, _mm256_set1_epi16(0x000F)),
                                        _mm256_and_si256(_mm256_srli_epi16(p, 4), _mm256_set1_epi16(0x00F0)));
      const __m256i bytes = _mm256_permute4x64_epi64(_mm256_packus_epi16(r, r), 0x08);
      _mm_storeu_si128(static_cast<__m128i*>(out), _mm256_castsi256_si128(bytes));
    } else {
      _mm256_storeu_si256(static_cast<__m256i*>(out), p);
    }
  }
  /// 8 codes (int32) from 4 packed bytes.
  static __m256i load_codes(const std::uint8_t* bytes) noexcept {
    std::int32_t word;
    std::memcpy(&word, bytes, 4);
    const __m128i b = _mm_cvtsi32_si128(word);
    const __m256i shifts = _mm256_setr_epi32(28, 24, 28, 24, 28, 24, 28, 24);
    return _mm256_srai_epi32(_mm256_sllv_epi32(_mm256_cvtepu8_epi32(_mm_unpacklo_epi8(b, b)), shifts), 28);
  }
  /// Non-temporal store of 8 floats (p 32-byte aligned).
  static void stream(float* p, __m256 v) noexcept { _mm256_stream_ps(p, v); }
  /// Orders earlier non-temporal stores before later stores.
  static void fence() noexcept { _mm_sfence(); }
  static constexpr bool has_clean_row = false;  // clean_row: avx512.hpp only
  static constexpr bool has_16_groups = false;  // quantize16: avx512.hpp only
};

/// The quantise ops of a tag (std::type_identity; decltype only).
template <class = void>
std::type_identity<avx2_quant_ops> quant_ops(xsimd::avx2) noexcept;

}  // namespace
}  // namespace detail::arch
SINGLEQUANT_END_NAMESPACE

#endif
// ---- end of the INT4 quantise section -----------------------------------------------------------
#endif  // SINGLEQUANT_DETAIL_ARCH_AVX2_HPP
