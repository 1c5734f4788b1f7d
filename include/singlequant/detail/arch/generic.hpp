// singlequant/detail/arch/generic.hpp - the per-ISA helpers of the kernels, xsimd style: every
// helper is a set of overloads on the xsimd architecture tag (arch::f(args..., Arch{})), one per ISA
// file (sse2.hpp, avx2.hpp, avx512.hpp), plus the portable fallback below on xsimd::generic, which
// every tag derives from. Overload resolution picks the most derived tag the translation unit has
// code for, as the `if constexpr (std::is_base_of_v<...>)` chains it replaces did. The kernels
// include this file and stay free of intrinsics and ISA tests.
//
// Every helper is a template on the caller's Arch and always inlined, so per-ISA copies never
// share a symbol (ODR; see sse2.hpp). The fallbacks come after the ISA files so that their calls to
// other helpers see every overload.
#ifndef SINGLEQUANT_DETAIL_ARCH_GENERIC_HPP
#define SINGLEQUANT_DETAIL_ARCH_GENERIC_HPP

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include <xsimd/xsimd.hpp>

#include "../../config.hpp"
#include "base_tag.hpp"
#include "../xsimd_compat.hpp"
#include "avx2.hpp"
#include "avx512.hpp"
#include "scalar.hpp"
#include "sse2.hpp"

SINGLEQUANT_BEGIN_NAMESPACE
namespace detail::arch {

/// x y + z (one rounding where xsimd's fma has one).
template <class T, class Arch>
SINGLEQUANT_INLINE xsimd::batch<T, Arch> fmadd(const xsimd::batch<T, Arch>& x, const xsimd::batch<T, Arch>& y,
                                               const xsimd::batch<T, Arch>& z, base_tag) noexcept {
  return xsimd::fma(x, y, z);
}

template <std::size_t H>
struct lane_partner {  // generator: lane l exchanges with lane l ^ H
  static constexpr std::size_t get(std::size_t lane, std::size_t) { return lane ^ H; }
};

template <class T>
using lane_index_t = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;

/// Lane l of the result is lane l ^ H of x.
template <std::size_t H, class T, class Arch>
SINGLEQUANT_INLINE xsimd::batch<T, Arch> swap_lanes(const xsimd::batch<T, Arch>& x, base_tag) noexcept {
  return xsimd::swizzle(x, simd::make_lane_constant<lane_index_t<T>, Arch, lane_partner<H>>());
}

/// The first FWHT level (lanes l and l ^ 1) of the register at p: low lane a + b, high lane a - b,
/// as fma(x, sign1, swapped) (exact: sign1 is +-1).
template <class T, class Arch>
SINGLEQUANT_INLINE xsimd::batch<T, Arch> load_first_level(const T* p, const xsimd::batch<T, Arch>& sign1,
                                                          base_tag) noexcept {
  const auto x = xsimd::batch<T, Arch>::load_unaligned(p);
  return fmadd(x, sign1, swap_lanes<1>(x, Arch{}), Arch{});
}

/// L x L transpose in place at p (rows `stride` apart, L = batch lanes): p[k][r] <-> p[r][k].
template <class Arch, class U>
SINGLEQUANT_INLINE void transpose_square(U* p, std::size_t stride, base_tag) noexcept {
  constexpr std::size_t lanes = xsimd::batch<U, Arch>::size;
  for (std::size_t r = 0; r < lanes; ++r)
    for (std::size_t k = r + 1; k < lanes; ++k) std::swap(p[r * stride + k], p[k * stride + r]);
}

/// Both Rows x Rows halves of the Rows x 2 Rows block at p transposed in place, from L x L squares
/// (L = batch lanes, Rows a multiple of L; else only the AVX-512 overloads exist).
template <class Arch, std::size_t Rows, class U>
SINGLEQUANT_INLINE void transpose_halves(U* p, std::size_t stride, base_tag) noexcept {
  using batch = xsimd::batch<U, Arch>;
  constexpr std::size_t lanes = batch::size;
  static_assert(Rows % lanes == 0);
  alignas(64) U swap[lanes * lanes];
  for (std::size_t half = 0; half < 2 * Rows; half += Rows)
    for (std::size_t rb = 0; rb < Rows; rb += lanes) {
      transpose_square<Arch>(p + rb * stride + half + rb, stride, Arch{});
      for (std::size_t cb = rb + lanes; cb < Rows; cb += lanes) {  // swap square (rb, cb) with (cb, rb)^T
        U* upper = p + rb * stride + half + cb;
        U* lower = p + cb * stride + half + rb;
        for (std::size_t r = 0; r < lanes; ++r) batch::load_unaligned(upper + r * stride).store_aligned(swap + r * lanes);
        transpose_square<Arch>(swap, lanes, Arch{});
        transpose_square<Arch>(lower, stride, Arch{});
        for (std::size_t r = 0; r < lanes; ++r) {
          batch::load_unaligned(lower + r * stride).store_unaligned(upper + r * stride);
          batch::load_aligned(swap + r * lanes).store_unaligned(lower + r * stride);
        }
      }
    }
}

/// Tuning traits of a tag (the ISA files overload them; templates so that unused ones never warn):
/// how many vector registers the kernels may plan their tiles for, and whether xsimd::fma (and so
/// simd::fused_fma) is one hardware instruction.
template <class = void>
constexpr std::size_t vector_registers(base_tag) noexcept {
  return 16;
}
template <class = void>
constexpr bool has_fma(base_tag) noexcept {
  return false;
}

/// The INT4 GEMM ops struct of Arch (shape: avx512.hpp); Vnni selects vpdpbusd where it exists.
template <class Arch, bool Vnni>
using int4_ops_t = typename decltype(int4_ops<Vnni>(Arch{}))::type;

/// The raw-intrinsics quantise ops of Arch in this translation unit (sse2.hpp, avx2.hpp, avx512.hpp:
/// store_codes4, load_codes, stream, fence; clean_row and quantize16 where has_clean_row /
/// has_16_groups); void where there are none.
template <class Arch>
using quant_ops_t = typename decltype(quant_ops(Arch{}))::type;

/// Empty asm barrier: the value must be materialised, so the compiler cannot contract the multiply
/// that produced it into an FMA with a later add (which would make results depend on -mfma).
template <class Arch, class V>
SINGLEQUANT_INLINE void no_contract(V& v) noexcept {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__) || defined(__aarch64__))
#  if defined(__aarch64__)
#    define SINGLEQUANT_VECTOR_REGISTER "+w"  // any NEON register
#  else
#    define SINGLEQUANT_VECTOR_REGISTER "+v"  // any SSE / AVX register
#  endif
  if constexpr (std::is_arithmetic_v<V>) {
    asm("" : SINGLEQUANT_VECTOR_REGISTER(v));
  } else {
    auto r = static_cast<typename V::register_type>(v);
    asm("" : SINGLEQUANT_VECTOR_REGISTER(r));
    v = V(r);
  }
#  undef SINGLEQUANT_VECTOR_REGISTER
#else
  static_cast<void>(v);  // MSVC and others do not contract by default
#endif
}

}  // namespace detail::arch
SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_DETAIL_ARCH_GENERIC_HPP
