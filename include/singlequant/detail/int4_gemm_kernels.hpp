// singlequant/detail/int4_gemm_kernels.hpp - INT4 x INT4 GEMM / GEMV micro-kernels (ISA-neutral;
// the intrinsics are in detail/arch/).
//
// Kernel layout of the weights (built once by int4_gemm_weights, int4_gemm.hpp):
//   * Rows (output channels) in panels of 16; the last panel is padded with zero rows.
//   * K in groups (the weights' scale groups; one group of K for per-row scales), each padded with
//     zeros to a multiple of 8 codes ("octets").
//   * Panel p, group g, octet o is one 64-byte block at ((p * groups + g) * octets + o) * 64; byte
//     4 j + b of it holds, for row 16 p + j, u(8 o + b) in the low nibble and u(8 o + 4 + b) in the
//     high nibble, where u = code + 8 (0..15, unsigned) and 8 o indexes the group's padded codes.
//   * Scales: 16 floats per (panel, group) at (p * groups + g) * 16 (0 for padding rows).
// Activations are unpacked per call to signed bytes in the same padded group layout, with
// corr(m, g) = -8 * sum of row m's codes in group g, so that
//   sum_k u_k a_k + corr = sum_k (w_k + 8) a_k - 8 sum_k a_k = sum_k w_k a_k   (exact in int32),
// which lets vpdpbusd (unsigned x signed bytes) run on the codes directly.
// Output: y(m, n) = sa(m) * sum_g float(acc(m, n, g)) * sw(n, g) [+ bias(n)] [+ y(m, n)], the sum
// over g in increasing order with one fma per group on every path (the SSE paths multiply then add).
// Each output is computed by one tile with the same operations whatever the blocking or thread
// split, so results do not depend on the thread count.
#ifndef SINGLEQUANT_DETAIL_INT4_GEMM_KERNELS_HPP
#define SINGLEQUANT_DETAIL_INT4_GEMM_KERNELS_HPP

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "../config.hpp"
#include "arch/avx2.hpp"
#include "arch/avx512.hpp"
#include "arch/scalar.hpp"
#include "arch/sse2.hpp"
#include "cpu.hpp"
#include "simd_core.hpp"

SINGLEQUANT_BEGIN_NAMESPACE
namespace detail {

/// Rows per weight panel and bytes per (panel, octet) block of the kernel layout.
inline constexpr std::size_t int4_panel_rows = 16;
inline constexpr std::size_t int4_block_bytes = 64;

/// One product's operands (plain pointers and sizes; see the file comment for the layouts).
struct int4_gemm_problem {
  const std::int8_t* a = nullptr;       // m x lda signed codes, groups * octets * 8 used per row
  std::size_t lda = 0;
  const std::int32_t* a_corr = nullptr;  // m x groups
  const float* a_scales = nullptr;       // m
  const std::uint8_t* w = nullptr;       // panels x groups x octets x 64 bytes
  const float* w_scales = nullptr;       // panels x groups x 16
  const float* bias = nullptr;           // n floats or null
  float* y = nullptr;                    // m x ldy
  std::size_t ldy = 0;
  std::size_t m = 0, n = 0, groups = 0, octets = 0;
  bool accumulate = false;
  bool allow_vnni = true;  // avx512bw: use vpdpbusd when the CPU has it (tests turn it off)
};

template <class Arch>
struct int4_gemm_kernel {
  /// Rows [m0, m1) x panels [panel0, panel1) of the output.
  static void run(const int4_gemm_problem& p, std::size_t m0, std::size_t m1, std::size_t panel0,
                  std::size_t panel1) noexcept;
  /// Whether run() uses vpdpbusd with this problem's allow_vnni = true (false off avx512bw).
  static bool uses_vnni() noexcept;
};

namespace int4_gemm_impl {

template <std::size_t... I, class F>
SINGLEQUANT_INLINE void unrolled(std::index_sequence<I...>, F&& f) {
  (f(std::integral_constant<std::size_t, I>{}), ...);
}
/// f(integral_constant<0>), ..., f(integral_constant<N - 1>), unrolled at compile time so that the
/// accumulator arrays of a tile stay in registers.
template <std::size_t N, class F>
SINGLEQUANT_INLINE void unrolled(F&& f) {
  unrolled(std::make_index_sequence<N>(), f);
}

/// Bytes ahead of the current block that a streaming (small-M) tile prefetches in each of its
/// panels: the weights then come from DRAM or L3 once, and the hardware prefetcher alone keeps too
/// few lines in flight over the NP concurrent panel streams (docs/performance.md).
inline constexpr std::size_t int4_prefetch_bytes = 2048;

/// Whether an MR x NP tile keeps the low- and high-nibble products in separate accumulators (the
/// two vpdpbusd of an octet then do not wait on each other): only the weights-inner order, and
/// only while 2 MR nv accumulators plus 2 nv unpacked weights fit in 28 of the 32 registers.
template <class Ops, std::size_t MR, std::size_t NP>
inline constexpr bool int4_split_tile =
    !Ops::weights_outer && (2 * MR + 2) * NP * (int4_panel_rows / Ops::lanes) <= 28;

/// MR rows x NP panels of the output (c: MR x NP * 16 floats of scratch), then the epilogue.
/// stream: the weights are read once (M <= 8), so prefetch them int4_prefetch_bytes ahead.
template <class Ops, std::size_t MR, std::size_t NP>
void tile(const int4_gemm_problem& p, std::size_t m0, std::size_t panel0, bool stream) noexcept {
  constexpr std::size_t per_panel = int4_panel_rows / Ops::lanes;  // vectors per panel
  constexpr std::size_t nv = NP * per_panel;
  constexpr std::size_t width = NP * int4_panel_rows;
  constexpr bool split = int4_split_tile<Ops, MR, NP>;
  alignas(64) float c[MR * width] = {};
  const std::size_t groups = p.groups, octets = p.octets;
  for (std::size_t g = 0; g < groups; ++g) {
    typename Ops::ivec acc[MR][nv];
    typename Ops::ivec acc_hi[split ? MR : 1][split ? nv : 1];  // high nibbles (split tiles)
    unrolled<MR>([&](auto m) {
      const auto init = Ops::set1(p.a_corr[(m0 + m) * groups + g]);
      unrolled<nv>([&](auto v) { acc[m][v] = init; });
      if constexpr (split) unrolled<nv>([&](auto v) { acc_hi[m][v] = Ops::set1(0); });
    });
    const std::uint8_t* w[NP];
    unrolled<NP>([&](auto q) { w[q] = p.w + ((panel0 + q) * groups + g) * octets * int4_block_bytes; });
    const std::int8_t* a = p.a + m0 * p.lda + g * octets * 8;
    for (std::size_t o = 0; o < octets; ++o) {
      if (stream) {
        // Through uintptr_t: the address may lie past the end of the weights (prefetch does not fault).
        unrolled<NP>([&](auto q) {
          const std::uintptr_t ahead = reinterpret_cast<std::uintptr_t>(w[q] + o * int4_block_bytes) + int4_prefetch_bytes;
          __builtin_prefetch(reinterpret_cast<const void*>(ahead), 0, 3);
        });
      }
      if constexpr (Ops::weights_outer) {
        // Few registers (SSE, AVX2, scalar): one weight vector at a time, every row's codes live.
        unrolled<nv>([&](auto v) {
          constexpr std::size_t q = decltype(v)::value / per_panel, part = decltype(v)::value % per_panel;
          typename Ops::wvec lo, hi;
          Ops::unpack(w[q] + o * int4_block_bytes + part * Ops::lanes * 4, lo, hi);
          unrolled<MR>([&](auto m) { acc[m][v] = Ops::dot8(acc[m][v], lo, hi, a + m * p.lda + o * 8); });
        });
      } else {
        // 32 registers: every weight vector of the octet unpacked once, one row's codes at a time.
        typename Ops::wvec lo[nv], hi[nv];
        unrolled<nv>([&](auto v) {
          constexpr std::size_t q = decltype(v)::value / per_panel, part = decltype(v)::value % per_panel;
          Ops::unpack(w[q] + o * int4_block_bytes + part * Ops::lanes * 4, lo[v], hi[v]);
        });
        unrolled<MR>([&](auto m) {
          const std::int8_t* am = a + m * p.lda + o * 8;
          if constexpr (split) {
            unrolled<nv>([&](auto v) {
              acc[m][v] = Ops::dot4(acc[m][v], lo[v], am);
              acc_hi[m][v] = Ops::dot4(acc_hi[m][v], hi[v], am + 4);
            });
          } else {
            unrolled<nv>([&](auto v) { acc[m][v] = Ops::dot8(acc[m][v], lo[v], hi[v], am); });
          }
        });
      }
    }
    if constexpr (split) unrolled<MR>([&](auto m) { unrolled<nv>([&](auto v) { acc[m][v] = Ops::add(acc[m][v], acc_hi[m][v]); }); });
    unrolled<MR>([&](auto m) {
      unrolled<nv>([&](auto v) {
        constexpr std::size_t q = decltype(v)::value / per_panel, part = decltype(v)::value % per_panel;
        const float* s = p.w_scales + ((panel0 + q) * groups + g) * int4_panel_rows + part * Ops::lanes;
        Ops::fold(c + m * width + v * Ops::lanes, s, acc[m][v]);
      });
    });
  }
  const std::size_t n0 = panel0 * int4_panel_rows;
  const std::size_t n_end = std::min(p.n, n0 + width);
  for (std::size_t m = 0; m < MR; ++m) {
    const float sa = p.a_scales[m0 + m];
    float* y = p.y + (m0 + m) * p.ldy;
    for (std::size_t n = n0; n < n_end; ++n) {
      float v = sa * c[m * width + (n - n0)];
      if (p.bias != nullptr) v += p.bias[n];
      y[n] = p.accumulate ? y[n] + v : v;
    }
  }
}

template <class Ops>
using tile_fn = void (*)(const int4_gemm_problem&, std::size_t, std::size_t, bool) noexcept;

template <class Ops, std::size_t... R, std::size_t... Q>
constexpr auto tile_table(std::index_sequence<R...>, std::index_sequence<Q...>) {
  // table[(r - 1) * NP + (q - 1)] runs an r x q tile (the tails of the blocking).
  std::array<tile_fn<Ops>, sizeof...(R) * sizeof...(Q)> table{};
  std::size_t i = 0;
  auto row = [&](auto r) { ((table[i++] = &tile<Ops, decltype(r)::value + 1, Q + 1>), ...); };
  (row(std::integral_constant<std::size_t, R>{}), ...);
  return table;
}

/// Weight bytes of one panel block kept in L2 while every row tile passes over it.
inline constexpr std::size_t panel_block_bytes = std::size_t{256} << 10;

/// The tile shape of Ops for streaming products (M <= 8): its stream_tile_* where it has them.
template <class Ops>
constexpr std::pair<std::size_t, std::size_t> stream_tile_shape() {
  if constexpr (requires { Ops::stream_tile_rows; }) return {Ops::stream_tile_rows, Ops::stream_tile_panels};
  else return {Ops::tile_rows, Ops::tile_panels};
}

template <class Ops, std::size_t mr, std::size_t np>
void drive_tiles(const int4_gemm_problem& p, std::size_t m0, std::size_t m1, std::size_t panel0,
                 std::size_t panel1, bool stream) noexcept {
  static constexpr auto table = tile_table<Ops>(std::make_index_sequence<mr>(), std::make_index_sequence<np>());
  const std::size_t panel_bytes = std::max<std::size_t>(1, p.groups * p.octets * int4_block_bytes);
  const std::size_t block = std::max<std::size_t>(np, panel_block_bytes / panel_bytes / np * np);
  for (std::size_t b0 = panel0; b0 < panel1; b0 += block) {
    const std::size_t b1 = std::min(panel1, b0 + block);
    for (std::size_t m = m0; m < m1; m += mr) {
      const std::size_t rows = std::min(mr, m1 - m);
      for (std::size_t q = b0; q < b1; q += np) {
        const std::size_t panels = std::min(np, b1 - q);
        table[(rows - 1) * np + (panels - 1)](p, m, q, stream);
      }
    }
  }
}

template <class Ops>
void drive(const int4_gemm_problem& p, std::size_t m0, std::size_t m1, std::size_t panel0,
           std::size_t panel1) noexcept {
  // Decoding: the weights are read once, from DRAM or L3. The tile shape changes only which tile
  // computes an output, never its operations.
  if (p.m <= 8) {
    constexpr auto shape = stream_tile_shape<Ops>();
    drive_tiles<Ops, shape.first, shape.second>(p, m0, m1, panel0, panel1, true);
  } else {
    drive_tiles<Ops, Ops::tile_rows, Ops::tile_panels>(p, m0, m1, panel0, panel1, false);
  }
}

}  // namespace int4_gemm_impl

template <class Arch>
void int4_gemm_kernel<Arch>::run(const int4_gemm_problem& p, std::size_t m0, std::size_t m1,
                                 std::size_t panel0, std::size_t panel1) noexcept {
  if (m0 >= m1 || panel0 >= panel1) return;
  using namespace int4_gemm_impl;
  if constexpr (simd::is_scalar_v<Arch>) {
    drive<arch::scalar_int4_ops>(p, m0, m1, panel0, panel1);
    return;
  } else {
    // The ops struct of Arch (detail/arch/): vpdpbusd where the CPU has it (AVX-512 only).
    using plain = arch::int4_ops_t<Arch, false>;
    using vnni = arch::int4_ops_t<Arch, true>;
    if constexpr (!std::is_same_v<plain, vnni>) {
      if (p.allow_vnni && uses_vnni()) {
        drive<vnni>(p, m0, m1, panel0, panel1);
        return;
      }
    }
    drive<plain>(p, m0, m1, panel0, panel1);
  }
}

template <class Arch>
bool int4_gemm_kernel<Arch>::uses_vnni() noexcept {
  if constexpr (simd::is_scalar_v<Arch>) {
    return false;
  } else if constexpr (!std::is_same_v<arch::int4_ops_t<Arch, true>, arch::int4_ops_t<Arch, false>>) {
    return arch::vnni_compiled || cpu_has_avx512_vnni();  // Arch has a vpdpbusd form
  } else {
    return false;
  }
}

SINGLEQUANT_EXTERN_KERNEL(int4_gemm_kernel)

}  // namespace detail
SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_DETAIL_INT4_GEMM_KERNELS_HPP
