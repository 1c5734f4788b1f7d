// singlequant/detail/arch/avx2.hpp - AVX2 + FMA intrinsics of the INT4 GEMM (the ops shape is
// described in detail/arch/avx512.hpp).
#ifndef SINGLEQUANT_DETAIL_ARCH_AVX2_HPP
#define SINGLEQUANT_DETAIL_ARCH_AVX2_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../../config.hpp"

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
};

}  // namespace
}  // namespace detail::arch
SINGLEQUANT_END_NAMESPACE

#endif
// ---- end of the INT4 quantise section -----------------------------------------------------------
#endif  // SINGLEQUANT_DETAIL_ARCH_AVX2_HPP
