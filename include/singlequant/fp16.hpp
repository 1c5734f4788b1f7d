// singlequant/fp16.hpp - IEEE 754 binary16 (fp16) conversion, used by the ggml Q4_0 scale and
// AutoGPTQ's fp16 scales (no xsimd; constexpr).
#ifndef SINGLEQUANT_FP16_HPP
#define SINGLEQUANT_FP16_HPP

#include <bit>
#include <cstdint>

#include "config.hpp"

SINGLEQUANT_BEGIN_NAMESPACE

/// fp32 -> fp16 bits, round to nearest even; overflow -> +-Inf, NaN -> a quiet NaN (sign kept),
/// results below the fp16 normal range become fp16 subnormals or +-0.
[[nodiscard]] constexpr std::uint16_t float_to_half_bits(float value) noexcept {
  const std::uint32_t bits = std::bit_cast<std::uint32_t>(value);
  const auto sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000u);
  const std::uint32_t magnitude = bits & 0x7FFFFFFFu;
  if (magnitude > 0x7F800000u) return static_cast<std::uint16_t>(sign | 0x7E00u);  // NaN
  if (magnitude >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);  // >= 65520: Inf
  if (magnitude < 0x38800000u) {
    // Below 2^-14: an fp16 subnormal, value = m * 2^-24 with m = round(|value| * 2^24).
    if (magnitude < 0x33000000u) return sign;  // < 2^-25: rounds to 0 (2^-25 itself ties to even 0)
    const std::uint32_t exponent = magnitude >> 23;
    const std::uint32_t mantissa = (magnitude & 0x7FFFFFu) | 0x800000u;
    const std::uint32_t shift = 126u - exponent;  // |value| = mantissa * 2^(exponent - 150)
    const std::uint32_t half = 1u << (shift - 1);
    std::uint32_t result = mantissa >> shift;
    const std::uint32_t rest = mantissa & ((1u << shift) - 1u);
    if (rest > half || (rest == half && (result & 1u) != 0)) ++result;
    return static_cast<std::uint16_t>(sign | result);
  }
  // Normal: rebias the exponent (127 -> 15) and round the 23-bit mantissa to 10 bits; a carry out
  // of the mantissa correctly bumps the exponent.
  const std::uint32_t rebased = magnitude - 0x38000000u;  // (exponent - 112) << 23 | mantissa
  std::uint32_t result = rebased >> 13;
  const std::uint32_t rest = rebased & 0x1FFFu;
  if (rest > 0x1000u || (rest == 0x1000u && (result & 1u) != 0)) ++result;
  return static_cast<std::uint16_t>(sign | result);
}

/// fp16 bits -> fp32 (exact; subnormals, Inf and NaN included).
[[nodiscard]] constexpr float half_bits_to_float(std::uint16_t half) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(half & 0x8000u) << 16;
  const std::uint32_t exponent = (half >> 10) & 0x1Fu;
  std::uint32_t mantissa = half & 0x3FFu;
  if (exponent == 0x1F) return std::bit_cast<float>(sign | 0x7F800000u | mantissa << 13);
  if (exponent != 0) return std::bit_cast<float>(sign | (exponent + 112u) << 23 | mantissa << 13);
  if (mantissa == 0) return std::bit_cast<float>(sign);
  // Subnormal: normalise m * 2^-24.
  std::uint32_t e = 113;  // exponent field of 2^-14
  while ((mantissa & 0x400u) == 0) {
    mantissa <<= 1;
    --e;
  }
  return std::bit_cast<float>(sign | e << 23 | (mantissa & 0x3FFu) << 13);
}

SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_FP16_HPP
