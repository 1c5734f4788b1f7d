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
#endif  // SINGLEQUANT_DETAIL_ARCH_AVX2_HPP
