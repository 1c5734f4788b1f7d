// singlequant/detail/q4_0_kernels.hpp - the nibble reorder of the ggml Q4_0 export, without xsimd
// (int4.hpp stays light): 64-bit SWAR on little-endian hosts, a byte loop elsewhere.
//
// Our packed row holds element e at nibble e % 2 of byte e / 2, as a two's complement code c; a
// Q4_0 block of 32 elements holds u = c + 8 = nibble(c) ^ 8, element j at the low nibble of qs[j]
// and element j + 16 at its high nibble (j < 16).
#ifndef SINGLEQUANT_DETAIL_Q4_0_KERNELS_HPP
#define SINGLEQUANT_DETAIL_Q4_0_KERNELS_HPP

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../config.hpp"

SINGLEQUANT_BEGIN_NAMESPACE
namespace detail {

/// qs[0..16) of one Q4_0 block from the 16 packed bytes of its 32 elements (see the file comment):
/// with a = bytes 0..7 (elements 0..15) and c = bytes 8..15 (elements 16..31),
///   qs[2k] = (a_k & 0xF | c_k << 4) ^ 0x88,  qs[2k + 1] = (a_k >> 4 | c_k & 0xF0) ^ 0x88.
inline void q4_0_qs_from_packed(const std::uint8_t* packed, std::uint8_t* qs) noexcept {
  if constexpr (std::endian::native == std::endian::little) {
    std::uint64_t a = 0, c = 0;
    std::memcpy(&a, packed, 8);
    std::memcpy(&c, packed + 8, 8);
    constexpr std::uint64_t low = 0x0F0F0F0F0F0F0F0Full, high = 0xF0F0F0F0F0F0F0F0ull;
    constexpr std::uint64_t flip = 0x8888888888888888ull;
    const std::uint64_t even = ((a & low) | ((c << 4) & high)) ^ flip;  // qs[2k], k = 0..7
    const std::uint64_t odd = (((a >> 4) & low) | (c & high)) ^ flip;   // qs[2k + 1]
    // Bytes 0..3 (4..7) of a word to the even bytes of a word: the byte interleave of even and odd.
    auto spread = [](std::uint64_t x) {
      x = (x | x << 16) & 0x0000FFFF0000FFFFull;
      return (x | x << 8) & 0x00FF00FF00FF00FFull;
    };
    const std::uint64_t first = spread(even & 0xFFFFFFFFull) | spread(odd & 0xFFFFFFFFull) << 8;
    const std::uint64_t second = spread(even >> 32) | spread(odd >> 32) << 8;
    std::memcpy(qs, &first, 8);
    std::memcpy(qs + 8, &second, 8);
  } else {
    for (std::size_t k = 0; k < 8; ++k) {
      const unsigned a = packed[k], c = packed[k + 8];
      qs[2 * k] = static_cast<std::uint8_t>(((a & 0x0Fu) | ((c << 4) & 0xF0u)) ^ 0x88u);
      qs[2 * k + 1] = static_cast<std::uint8_t>(((a >> 4) | (c & 0xF0u)) ^ 0x88u);
    }
  }
}

}  // namespace detail
SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_DETAIL_Q4_0_KERNELS_HPP
