// singlequant/detail/fwht_kernels.hpp - fast Walsh-Hadamard transform and the +-1 block product.
//
// fwht: in place y = scale * (x .* in_signs) H_n .* out_signs for n = 2^k, H_n the Sylvester matrix
// (natural order, H[i][j] = (-1)^popcount(i & j)). The butterfly levels run from the lowest index
// bit to the highest on every path, so the SIMD paths give the scalar path's results bit for bit:
//  * the lowest log2(W) levels (W = lanes per register) inside each register: one lane swizzle and
//    one fma(x, +-1, swizzled) per level;
//  * the next levels across up to 16 registers held in the register file (radix-2^r passes: load
//    2^r registers a stride apart, r levels, store), so each pass over memory does up to 4 levels;
//  * cache blocking: a vector larger than an L1 block is first transformed block by block (all the
//    low levels while the block is in L1), likewise for L2 blocks, then the high levels run as
//    strided passes over the whole vector.
//
// mix: the dense K x K +-1 factor of a non-power-of-two transform H_K (x) H_m. With the row-major
// reshape Z[s][q] = z[s m + q] it computes y_r = scale * sum_s C[s][r] z_s (z_s the length-m block s,
// C = H_K for x H, C = H_K^T for x H^T), vectorised along q. The +-1 coefficients are applied by the
// "four Russians" method: inputs are grouped g at a time, all 2^g signed sums of a group are tabulated
// (half of them met in the middle, one addition each, the other half by exact negation), and every
// output adds one table entry per group: about (K / g) (2^g + K) additions per column instead of K^2.
// The lookups are bound by the loads of table entries (docs/performance.md), so the schedule
// minimises K^2 / g + K 2^g / g. In a memory-resident batch the next block is prefetched, a few
// lines per block of outputs, while one is mixed.
#ifndef SINGLEQUANT_DETAIL_FWHT_KERNELS_HPP
#define SINGLEQUANT_DETAIL_FWHT_KERNELS_HPP

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "arch/narrow.hpp"
#include "simd_core.hpp"

SINGLEQUANT_BEGIN_NAMESPACE
namespace detail {

/// Bytes between two table entries of the block product: two 64-byte registers of columns on every
/// path (narrower registers take several tiles per entry), so table offsets do not depend on the ISA;
/// blocks shorter than that (m sizeof(T) < 128) use entries of m sizeof(T) bytes, at least 16
/// (mix_entry_bytes_for), so that a chunk holds more tables.
inline constexpr std::size_t mix_entry_bytes = 128;

/// Bytes between two table entries for blocks of m elements of `element_bytes` bytes.
constexpr std::size_t mix_entry_bytes_for(std::size_t m, std::size_t element_bytes) noexcept {
  const std::size_t bytes = m * element_bytes;
  return bytes >= mix_entry_bytes ? mix_entry_bytes : bytes <= 16 ? 16 : bytes;
}

/// The four-Russians schedule of one K x K +-1 factor in one direction (built by hadamard.hpp).
struct mix_plan {
  std::size_t k = 0;             // K: number of blocks
  std::size_t group_size = 0;    // g: inputs per table, 1..8
  std::size_t groups = 0;        // ceil(K / g)
  std::size_t chunk_groups = 0;  // tables held at once (sized for L1)
  // lookup[j * k + r]: element offset of output r's entry in the table of group j, within the
  // scratch of j's chunk: ((j % chunk_groups) * 2^g + index) * entry, where
  // bit t of index is set when the coefficient of input j g + t for output r is -1. Group-major,
  // so that a block of outputs reads its offsets of one group through one pointer.
  const std::uint16_t* lookup = nullptr;
  std::size_t entry = 0;  // elements between two table entries (mix_entry_bytes_for / sizeof(T))
};

/// Entries between two tables of a chunk: 2^g plus one, so that the tables and the accumulators do
/// not all start at the same offset modulo 4 KiB (L1 set and store-forwarding aliasing).
constexpr std::size_t mix_table_stride(std::size_t group_size) noexcept {
  return (std::size_t{1} << group_size) + 1;
}

/// Elements of scratch memory mix needs: the tables of one chunk, a pad entry, then K accumulators.
template <class T>
constexpr std::size_t mix_scratch_elements(std::size_t k, std::size_t group_size, std::size_t chunk_groups,
                                           std::size_t entry = mix_entry_bytes / sizeof(T)) noexcept {
  return (chunk_groups * mix_table_stride(group_size) + 1 + k) * entry;
}

// ---- scalar reference path -----------------------------------------------------------------------

// Every helper below is a template on Arch (even the scalar ones that SIMD paths fall back to), so
// per-ISA copies never share a symbol (see simd.hpp).
template <class T, class Arch>
void fwht_scalar(T* x, std::size_t log2_n, T scale, const T* in_signs, const T* out_signs) noexcept {
  const std::size_t n = std::size_t{1} << log2_n;
  if (in_signs != nullptr)
    for (std::size_t i = 0; i < n; ++i) x[i] *= in_signs[i];
  for (std::size_t h = 1; h < n; h *= 2)
    for (std::size_t i = 0; i < n; i += 2 * h)
      for (std::size_t j = i; j < i + h; ++j) {
        const T a = x[j], b = x[j + h];
        x[j] = a + b;
        x[j + h] = a - b;
      }
  for (std::size_t i = 0; i < n; ++i) x[i] *= out_signs != nullptr ? scale * out_signs[i] : scale;
}

// ---- SIMD helpers (templates on Arch: ODR-safe) --------------------------------------------------

constexpr std::size_t log2_of(std::size_t n) noexcept {
  std::size_t k = 0;
  while ((std::size_t{1} << k) < n) ++k;
  return k;
}

/// One butterfly level between lanes l and l ^ H of every register: low lane a + b, high lane a - b.
template <std::size_t H, class T, class Arch>
SINGLEQUANT_INLINE xsimd::batch<T, Arch> lane_level(const xsimd::batch<T, Arch>& x,
                                                    const xsimd::batch<T, Arch>& sign) noexcept {
  // low lane: b + a, high lane: -b + a (exact +-1 products), explicitly fused (arch::fmadd).
  return arch::fmadd(x, sign, arch::swap_lanes<H>(x, Arch{}), Arch{});
}

/// sign[l] = -1 where lane l is the high lane of level H, else +1.
template <class T, class Arch>
xsimd::batch<T, Arch> level_signs(std::size_t h) noexcept {
  constexpr std::size_t lanes = xsimd::batch<T, Arch>::size;
  alignas(64) T v[lanes];
  for (std::size_t l = 0; l < lanes; ++l) v[l] = (l & h) != 0 ? T(-1) : T(1);
  return xsimd::batch<T, Arch>::load_aligned(v);
}

template <class T, class Arch>
struct lane_context {
  using batch = xsimd::batch<T, Arch>;
  static constexpr std::size_t lanes = batch::size;
  batch sign1, sign2, sign4, sign8;
  lane_context()
      : sign1(level_signs<T, Arch>(1)), sign2(level_signs<T, Arch>(2)), sign4(level_signs<T, Arch>(4)),
        sign8(level_signs<T, Arch>(8)) {}
  SINGLEQUANT_INLINE batch levels(batch x) const noexcept {
    if constexpr (lanes >= 2) x = lane_level<1>(x, sign1);
    return levels_above_first(x);
  }
  /// The in-register levels but the first (lanes l and l ^ 1), which x has been through.
  SINGLEQUANT_INLINE batch levels_above_first(batch x) const noexcept {
    if constexpr (lanes >= 4) x = lane_level<2>(x, sign2);
    if constexpr (lanes >= 8) x = lane_level<4>(x, sign4);
    if constexpr (lanes >= 16) x = lane_level<8>(x, sign8);
    return x;
  }
  /// The in-register levels of lane distance below N (N <= lanes): the FWHT of lanes / N
  /// independent N-blocks held in one register.
  template <std::size_t N>
  SINGLEQUANT_INLINE batch levels_below(batch x) const noexcept {
    // The lanes bounds keep instantiations for rows wider than a register (never run: such rows
    // take the other paths) from naming lanes the register does not have.
    if constexpr (N > 1 && lanes >= 2) x = lane_level<1>(x, sign1);
    if constexpr (N > 2 && lanes >= 4) x = lane_level<2>(x, sign2);
    if constexpr (N > 4 && lanes >= 8) x = lane_level<4>(x, sign4);
    if constexpr (N > 8 && lanes >= 16) x = lane_level<8>(x, sign8);
    return x;
  }
  /// levels(load(p)), with the first level's lane exchange done by the load unit where the ISA
  /// allows (arch::load_first_level: the same e0 + e1, e0 - e1 as lane_level<1>).
  SINGLEQUANT_INLINE batch load_levels(const T* p) const noexcept {
    return levels_above_first(arch::load_first_level(p, sign1, Arch{}));
  }
};

/// R registers p[0], p[stride], ..., p[(R-1) stride]: optional input signs and in-register levels
/// (Leaf), log2 R butterfly levels across the registers, optional scale and output signs (Last).
template <std::size_t R, bool Leaf, bool Last, class T, class Arch>
SINGLEQUANT_INLINE void radix_block(T* p, std::size_t stride, const lane_context<T, Arch>& lanes,
                                    T scale, const T* in_signs, const T* out_signs) noexcept {
  using batch = xsimd::batch<T, Arch>;
  batch v[R];
  SINGLEQUANT_UNROLL
  for (std::size_t t = 0; t < R; ++t) {
    if constexpr (Leaf) {
      if (in_signs != nullptr)
        v[t] = lanes.levels(batch::load_unaligned(p + t * stride) * batch::load_unaligned(in_signs + t * stride));
      else
        v[t] = lanes.load_levels(p + t * stride);
    } else {
      v[t] = batch::load_unaligned(p + t * stride);
    }
  }
  SINGLEQUANT_UNROLL
  for (std::size_t h = 1; h < R; h *= 2) {
    SINGLEQUANT_UNROLL
    for (std::size_t t = 0; t < R; ++t) {
      if ((t & h) != 0) continue;
      const batch a = v[t], b = v[t + h];
      v[t] = a + b;
      v[t + h] = a - b;
    }
  }
  SINGLEQUANT_UNROLL
  for (std::size_t t = 0; t < R; ++t) {
    if constexpr (Last) {
      if (out_signs != nullptr)
        v[t] *= batch(scale) * batch::load_unaligned(out_signs + t * stride);
      else
        v[t] *= batch(scale);
    }
    v[t].store_unaligned(p + t * stride);
  }
}

/// Prefetches a memory region a few cache lines per step() (the next block of a memory-resident
/// batch, while this one is transformed) in page-interleaved order: line k of every 4 KiB chunk of
/// the region before line k + 1 of any, so that the hardware stream prefetcher runs ahead in all
/// of its pages at once instead of in one page after another (figures: docs/performance.md).
/// Regions up to 16 KiB go to L1 (with intent to write when for_write: the transforms work in
/// place); larger ones to L2 only, as they would not fit in L1 beside the block being transformed.
/// N > 0: a region of exactly N elements, its order fixed at compile time (the FWHT passes, whose
/// ALU ports it shares).
template <class T, std::size_t N = 0>
class prefetch_cursor {
  static constexpr std::size_t line_bytes = 64, chunk_bytes = 4096, l1_region_bytes = 16384;
  static constexpr std::size_t chunk_lines = chunk_bytes / line_bytes;
  static constexpr std::size_t chunks_for(std::size_t lines) noexcept {
    return lines > chunk_lines ? (lines + chunk_lines - 1) / chunk_lines : 1;
  }

 public:
  prefetch_cursor() = default;
  /// Lines of [begin, begin + elements) (elements == N if N > 0); a null begin fetches nothing.
  prefetch_cursor(const T* begin, std::size_t elements, bool for_write) noexcept
      : base_(reinterpret_cast<const char*>(begin)),
        lines_(begin == nullptr ? 0 : (elements * sizeof(T) + line_bytes - 1) / line_bytes),
        chunks_(chunks_for(lines_)),
        steps_(chunks_ > 1 ? chunks_ * chunk_lines : lines_),
        to_l2_(elements * sizeof(T) > l1_region_bytes),
        for_write_(for_write) {
    if constexpr (N > 0)
      if (begin == nullptr) next_ = fixed_steps;
  }

  /// Steps of the order left (a few may fall past the end of the region and fetch nothing).
  [[nodiscard]] std::size_t remaining() const noexcept { return steps() - next_; }
  /// Lines per step() when the rest is spread over `calls` calls.
  void spread_over(std::size_t calls) noexcept {
    per_step_ = (remaining() + calls - 1) / (calls > 0 ? calls : 1);
  }

  /// Prefetches the lines of the next spread_over step.
  template <class Arch>
  SINGLEQUANT_INLINE void step() noexcept {
    visit_step(fetcher<Arch>{to_l2(), for_write_});
  }
  /// N > 0: prefetches the lines of the next Lines steps, with constant offsets.
  template <class Arch, std::size_t Lines>
  SINGLEQUANT_INLINE void step_fixed() noexcept {
    visit_step_fixed<Lines>(fetcher<Arch>{to_l2(), for_write_});
  }

  /// step() with visit(line address) instead of the prefetch (tests check the order with it).
  template <class Visit>
  SINGLEQUANT_INLINE void visit_step(Visit&& visit) noexcept {
    const std::size_t end = next_ + per_step_ < steps() ? next_ + per_step_ : steps();
    for (; next_ < end; ++next_) {
      const std::size_t line = next_ % chunks() * chunk_lines + next_ / chunks();
      if (N > 0 || line < lines_) visit(base_ + line * line_bytes);
    }
  }
  /// step_fixed() with visit(line address). Lines and the chunk count are powers of two, so one
  /// divides the other: a step spans whole rounds (line k of every chunk) or part of one round.
  template <std::size_t Lines, class Visit>
  SINGLEQUANT_INLINE void visit_step_fixed(Visit&& visit) noexcept {
    static_assert(N > 0 && (Lines % fixed_chunks == 0 || fixed_chunks % Lines == 0));
    if (next_ >= fixed_steps) return;
    const char* const round = base_ + next_ / fixed_chunks * line_bytes;  // line k of chunk 0
    if constexpr (Lines % fixed_chunks == 0) {
      SINGLEQUANT_UNROLL
      for (std::size_t t = 0; t < Lines; ++t)
        visit(round + t / fixed_chunks * line_bytes + t % fixed_chunks * chunk_bytes);
    } else {
      const char* const first = round + next_ % fixed_chunks * chunk_bytes;
      SINGLEQUANT_UNROLL
      for (std::size_t t = 0; t < Lines; ++t) visit(first + t * chunk_bytes);
    }
    next_ += Lines;
  }

  /// N > 0: steps in the whole order.
  static constexpr std::size_t fixed_lines = (N * sizeof(T) + line_bytes - 1) / line_bytes;
  static constexpr std::size_t fixed_chunks = chunks_for(fixed_lines);
  static constexpr std::size_t fixed_steps =
      fixed_chunks > 1 ? fixed_chunks * chunk_lines : fixed_lines;

 private:
  static_assert(fixed_chunks == 1 || N * sizeof(T) % chunk_bytes == 0,
                "prefetch_cursor<T, N>: whole 4 KiB chunks");
  [[nodiscard]] std::size_t chunks() const noexcept { return N > 0 ? fixed_chunks : chunks_; }
  [[nodiscard]] std::size_t steps() const noexcept { return N > 0 ? fixed_steps : steps_; }
  [[nodiscard]] bool to_l2() const noexcept {
    return N > 0 ? N * sizeof(T) > l1_region_bytes : to_l2_;
  }
  /// One prefetch instruction per line; per ISA, as every kernel helper (see above). A functor
  /// with an always-inline call, not a lambda: GCC 12 dropped every prefetch of a lambda passed to
  /// visit_step (as if a call whose only effect is a prefetch had none).
  template <class Arch>
  struct fetcher {
    bool to_l2, for_write;
    SINGLEQUANT_INLINE void operator()(const char* line) const noexcept {
#if defined(__GNUC__) || defined(__clang__)
      if (to_l2)
        __builtin_prefetch(line, 0, 2);
      else if (for_write)
        __builtin_prefetch(line, 1, 3);
      else
        __builtin_prefetch(line, 0, 3);
#else
      static_cast<void>(line);
#endif
    }
  };
  const char* base_ = nullptr;
  std::size_t lines_ = 0, chunks_ = 1, steps_ = 0, next_ = 0, per_step_ = 0;
  bool to_l2_ = false, for_write_ = false;
};

/// Runs radix_block<2^bits> (levels across registers only) over every group of a pass whose lowest
/// level has stride `stride` (a runtime value: the passes above an L1 block; see fwht_fixed below).
template <bool Last, class T, class Arch>
void radix_pass(T* x, std::size_t n, std::size_t stride, std::size_t bits,
                const lane_context<T, Arch>& lanes, std::type_identity_t<T> scale,
                const std::type_identity_t<T>* out_signs) noexcept {
  constexpr std::size_t W = xsimd::batch<T, Arch>::size;
  const std::size_t span = stride << bits;
  auto run = [&](auto radix) {
    constexpr std::size_t R = decltype(radix)::value;
    for (std::size_t base = 0; base < n; base += span)
      for (std::size_t j = 0; j < stride; j += W) {
        const std::size_t offset = base + j;
        radix_block<R, false, Last>(x + offset, stride, lanes, scale, static_cast<const T*>(nullptr),
                                    out_signs != nullptr ? out_signs + offset : nullptr);
      }
  };
  switch (bits) {
    case 0: run(std::integral_constant<std::size_t, 1>{}); break;
    case 1: run(std::integral_constant<std::size_t, 2>{}); break;
    case 2: run(std::integral_constant<std::size_t, 4>{}); break;
    case 3: run(std::integral_constant<std::size_t, 8>{}); break;
    default: run(std::integral_constant<std::size_t, 16>{}); break;
  }
}

/// Levels [low_bit, high_bit) of an n-vector as strided radix passes of at most max_bits levels each
/// (balanced), the last one applying scale and output signs when `finish`.
template <class T, class Arch>
void strided_levels(T* x, std::size_t n, std::size_t low_bit, std::size_t high_bit,
                    std::size_t max_bits, const lane_context<T, Arch>& lanes, bool finish, T scale,
                    const T* out_signs) noexcept {
  const std::size_t total = high_bit - low_bit;
  const std::size_t passes = (total + max_bits - 1) / max_bits;
  std::size_t bit = low_bit;
  for (std::size_t pass = 0; pass < passes; ++pass) {
    const std::size_t bits = (total - (bit - low_bit) + (passes - pass) - 1) / (passes - pass);
    const bool last = finish && pass + 1 == passes;
    if (last)
      radix_pass<true>(x, n, std::size_t{1} << bit, bits, lanes, scale, out_signs);
    else
      radix_pass<false>(x, n, std::size_t{1} << bit, bits, lanes, T(1), nullptr);
    bit += bits;
  }
}

/// Registers one radix pass keeps live: 16 with 32 architectural registers (AVX-512), else 8.
template <class T, class Arch>
constexpr std::size_t max_radix_bits() noexcept {
  return xsimd::batch<T, Arch>::size * sizeof(T) >= 64 ? 4 : 3;
}

/// Levels [Bit, High) of an N-vector as balanced strided radix passes of at most MaxBits levels
/// (the split of strided_levels), every stride a compile-time constant; the last pass applies scale
/// and output signs, and spreads the rest of `ahead` evenly over its blocks.
template <std::size_t N, std::size_t Bit, std::size_t High, std::size_t MaxBits, class T, class Arch>
SINGLEQUANT_INLINE void fixed_strided_levels(T* x, T scale, const T* out_signs, const lane_context<T, Arch>& lanes,
                                             prefetch_cursor<T, N>& ahead) noexcept {
  constexpr std::size_t W = xsimd::batch<T, Arch>::size;
  constexpr std::size_t total = High - Bit, passes = (total + MaxBits - 1) / MaxBits;
  constexpr std::size_t bits = (total + passes - 1) / passes;
  constexpr std::size_t stride = std::size_t{1} << Bit, span = stride << bits;
  constexpr bool last = Bit + bits == High;
  // The last pass fetches the second half of the order, over its N / (W 2^bits) blocks.
  constexpr std::size_t per_block = prefetch_cursor<T, N>::fixed_steps / 2 / (N / (W << bits));
  for (std::size_t base = 0; base < N; base += span)
    for (std::size_t j = 0; j < stride; j += W) {
      const std::size_t offset = base + j;
      if constexpr (last) ahead.template step_fixed<Arch, (per_block > 0 ? per_block : 1)>();
      radix_block<std::size_t{1} << bits, false, last>(x + offset, stride, lanes, last ? scale : T(1),
                                                       static_cast<const T*>(nullptr),
                                                       last && out_signs != nullptr ? out_signs + offset : nullptr);
    }
  if constexpr (!last)
    fixed_strided_levels<N, Bit + bits, High, MaxBits>(x, scale, out_signs, lanes, ahead);
}

/// The leaf pass of fwht_fixed: in-register levels and LeafBits levels across registers; fetches
/// the first half of `ahead`'s order over its blocks (all of it when Last).
template <std::size_t N, std::size_t LeafBits, bool Last, class T, class Arch>
SINGLEQUANT_INLINE void fixed_leaf_pass(T* x, T scale, const T* in_signs, const T* out_signs,
                                        const lane_context<T, Arch>& lanes,
                                        prefetch_cursor<T, N>& ahead) noexcept {
  constexpr std::size_t W = xsimd::batch<T, Arch>::size, span = W << LeafBits;
  constexpr std::size_t per_block =
      prefetch_cursor<T, N>::fixed_steps / (Last ? 1 : 2) / (N / span);
  for (std::size_t base = 0; base < N; base += span) {
    ahead.template step_fixed<Arch, (per_block > 0 ? per_block : 1)>();
    radix_block<std::size_t{1} << LeafBits, true, Last>(x + base, W, lanes, scale,
                                                        in_signs != nullptr ? in_signs + base : nullptr,
                                                        out_signs != nullptr ? out_signs + base : nullptr);
  }
}

/// The in-L1 transform of fwht_simd for n = 2^Log2N with compile-time strides: with runtime strides
/// the address arithmetic of the 2 x 16 loads and stores per block runs on the same ports as the
/// butterflies (docs/performance.md).
template <std::size_t Log2N, class T, class Arch>
void fwht_fixed(T* x, T scale, const T* in_signs, const T* out_signs, const lane_context<T, Arch>& lanes,
                const T* prefetch) noexcept {
  constexpr std::size_t W = xsimd::batch<T, Arch>::size, log2_w = log2_of(W);
  constexpr std::size_t radix_bits = max_radix_bits<T, Arch>(), n = std::size_t{1} << Log2N;
  constexpr std::size_t leaf_bits = Log2N - log2_w < radix_bits ? Log2N - log2_w : radix_bits;
  constexpr bool leaf_only = log2_w + leaf_bits == Log2N;
  // One loop per combination of null and non-null signs: the nulls are then constants in the
  // inlined blocks, which keeps the sign-free loops as short as they can be (and their registers
  // unspilled).
  // Memory-resident batches pass the next row as `prefetch`: its first half is fetched during the
  // leaf pass and its second half during the last pass, so the loads stream all the time.
  prefetch_cursor<T, n> ahead(prefetch, n, true);
  const T* const none = nullptr;
  const T leaf_scale = leaf_only ? scale : T(1);
  const T* const last_signs = leaf_only ? out_signs : nullptr;
  if (in_signs == nullptr && last_signs == nullptr)
    fixed_leaf_pass<n, leaf_bits, leaf_only>(x, leaf_scale, none, none, lanes, ahead);
  else
    fixed_leaf_pass<n, leaf_bits, leaf_only>(x, leaf_scale, in_signs, last_signs, lanes, ahead);
  if constexpr (!leaf_only) {
    if (out_signs == nullptr)
      fixed_strided_levels<n, log2_w + leaf_bits, Log2N, radix_bits>(x, scale, none, lanes, ahead);
    else
      fixed_strided_levels<n, log2_w + leaf_bits, Log2N, radix_bits>(x, scale, out_signs, lanes,
                                                                     ahead);
  }
}

/// fwht_fixed<log2_n> for log2_n in [Low, Low + sizeof...(K)).
template <std::size_t Low, class T, class Arch, std::size_t... K>
void fwht_fixed_switch(T* x, std::size_t log2_n, T scale, const T* in_signs, const T* out_signs,
                       const lane_context<T, Arch>& lanes, const T* prefetch, std::index_sequence<K...>) noexcept {
  static_cast<void>(((log2_n == Low + K ? (fwht_fixed<Low + K>(x, scale, in_signs, out_signs, lanes, prefetch), true)
                                        : false) ||
                     ...));
}

template <class T, class Arch>
void fwht_simd(T* x, std::size_t log2_n, T scale, const T* in_signs, const T* out_signs,
               const lane_context<T, Arch>& lanes, const T* prefetch = nullptr) noexcept {
  constexpr std::size_t W = xsimd::batch<T, Arch>::size;
  constexpr std::size_t log2_w = log2_of(W);
  // Cache blocks: 32 KiB in a 48 KiB L1, 512 KiB in L2. Passes over levels above a block touch
  // 2^r lines a power-of-two stride apart, which share one L1 set: at most 8 (below the
  // associativity) at a time.
  constexpr std::size_t log2_l1_block = log2_of(32768 / sizeof(T));
  constexpr std::size_t log2_l2_block = log2_of(524288 / sizeof(T));
  const std::size_t n = std::size_t{1} << log2_n;
  if (log2_n < log2_w) {
    fwht_scalar<T, Arch>(x, log2_n, scale, in_signs, out_signs);
    return;
  }
  const std::size_t log2_block = log2_n > log2_l2_block ? log2_l2_block
                                 : log2_n > log2_l1_block ? log2_l1_block
                                                          : log2_n;
  if (log2_block < log2_n) {
    const std::size_t block = std::size_t{1} << log2_block;
    for (std::size_t b = 0; b < n; b += block)
      fwht_simd<T, Arch>(x + b, log2_block, T(1), in_signs != nullptr ? in_signs + b : nullptr,
                         nullptr, lanes, prefetch != nullptr ? prefetch + b : nullptr);
    strided_levels<T, Arch>(x, n, log2_block, log2_n, 3, lanes, true, scale, out_signs);
    return;
  }
  fwht_fixed_switch<log2_w>(x, log2_n, scale, in_signs, out_signs, lanes, prefetch,
                           std::make_index_sequence<log2_l1_block - log2_w + 1>{});
}

// ---- the +-1 block product (four Russians) -------------------------------------------------------

/// Load/store of one column tile: a register on SIMD paths, one element on the scalar path (and on
/// the scalar fallback of a SIMD path, column_tile<T, Arch, true>, still distinct per Arch).
template <class T, class Arch, bool Scalar = simd::is_scalar_v<Arch>>
struct column_tile;
template <class T, class Arch>
struct column_tile<T, Arch, true> {
  using type = T;
  static constexpr std::size_t size = 1;
  static SINGLEQUANT_INLINE T load(const T* p) noexcept { return *p; }
  static SINGLEQUANT_INLINE void store(T* p, T v) noexcept { *p = v; }
  static SINGLEQUANT_INLINE T broadcast(T v) noexcept { return v; }
  static SINGLEQUANT_INLINE T negate(T v) noexcept { return -v; }
};
template <class T, class Arch>
struct column_tile<T, Arch, false> {
  using type = xsimd::batch<T, Arch>;
  static constexpr std::size_t size = type::size;
  static SINGLEQUANT_INLINE type load(const T* p) noexcept { return type::load_unaligned(p); }
  static SINGLEQUANT_INLINE void store(T* p, const type& v) noexcept { v.store_unaligned(p); }
  static SINGLEQUANT_INLINE type broadcast(T v) noexcept { return type(v); }
  /// Exact negation (sign-bit flip; xsimd's AVX-512 unary minus is 0 - v, which maps -0 to +0).
  static SINGLEQUANT_INLINE type negate(const type& v) noexcept { return v ^ type(T(-0.0)); }
};

/// Where accumulate_outputs leaves its sums: the accumulators (acc, entry-strided), or, for the last
/// chunk, the outputs y_r = scale * acc_r (.* out_signs_r) in place of the input rows of x.
template <class T>
struct mix_output {
  T* acc;
  T* x;  // x + q0: row r of the block starts at x + r * m
  std::size_t m;
  T scale;
  const T* out_signs;  // out_signs + q0, or null
  bool last;
};

/// off[i] = index[i] for i < N: for N = 4 or 8 on little-endian targets one 8-byte load per four
/// offsets, split by shifts (loads bound the lookups, the ALU has room; with 16 offsets the split
/// values no longer fit the general registers).
template <std::size_t N>
SINGLEQUANT_INLINE void load_offsets(const std::uint16_t* index, std::size_t* off) noexcept {
  if constexpr ((N == 4 || N == 8) && std::endian::native == std::endian::little) {
    SINGLEQUANT_UNROLL
    for (std::size_t i = 0; i < N; i += 4) {
      std::uint64_t w;
      std::memcpy(&w, index + i, sizeof(w));
      SINGLEQUANT_UNROLL
      for (std::size_t t = 0; t < 4; ++t)
        off[i + t] = static_cast<std::size_t>((w >> (16 * t)) & 0xFFFFu);
    }
  } else {
    SINGLEQUANT_UNROLL
    for (std::size_t i = 0; i < N; ++i) off[i] = index[i];
  }
}

/// acc_{r0 + i} (+)= sum_{j < chunk_groups} T_{chunk + j}[lookup(r0 + i, chunk + j)] for i < Outputs,
/// over Regs column tiles starting at column offset v of the entries: one index load serves Regs
/// additions, and Outputs * Regs independent chains hide the add latency. Every output's additions
/// run in group order (the same on every path); the last chunk writes y_r directly.
template <class Tile, std::size_t Entry, std::size_t Outputs, std::size_t Regs, class T>
SINGLEQUANT_INLINE void accumulate_outputs(const mix_plan& plan, std::size_t r0, std::size_t chunk,
                                           std::size_t chunk_groups, const T* tables,
                                           const mix_output<T>& out, std::size_t v) noexcept {
  using V = typename Tile::type;
  constexpr std::size_t W = Tile::size, entry = Entry;
  const T* base = tables + v;
  const std::uint16_t* index = plan.lookup + chunk * plan.k + r0;  // group `chunk`, output r0
  V s[Outputs][Regs];
  std::size_t off[Outputs];
  load_offsets<Outputs>(index, off);
  SINGLEQUANT_UNROLL
  for (std::size_t i = 0; i < Outputs; ++i) {
    SINGLEQUANT_UNROLL
    for (std::size_t u = 0; u < Regs; ++u) s[i][u] = Tile::load(base + off[i] + u * W);
  }
  for (std::size_t j = 1; j < chunk_groups; ++j) {
    index += plan.k;
    load_offsets<Outputs>(index, off);
    SINGLEQUANT_UNROLL
    for (std::size_t i = 0; i < Outputs; ++i) {
      const T* e = base + off[i];
      SINGLEQUANT_UNROLL
      for (std::size_t u = 0; u < Regs; ++u) s[i][u] += Tile::load(e + u * W);
    }
  }
  SINGLEQUANT_UNROLL
  for (std::size_t i = 0; i < Outputs; ++i) {
    SINGLEQUANT_UNROLL
    for (std::size_t u = 0; u < Regs; ++u) {
      T* acc = out.acc + (r0 + i) * entry + v + u * W;
      const V y = chunk == 0 ? s[i][u] : Tile::load(acc) + s[i][u];
      if (!out.last) {
        Tile::store(acc, y);
      } else {
        const std::size_t offset = (r0 + i) * out.m + v + u * W;
        if (out.out_signs != nullptr)
          Tile::store(out.x + offset, y * (Tile::broadcast(out.scale) * Tile::load(out.out_signs + offset)));
        else
          Tile::store(out.x + offset, y * Tile::broadcast(out.scale));
      }
    }
  }
}

/// Accumulator tiles of the block product: 16 with 32 architectural registers, else 8.
template <class Tile>
constexpr std::size_t mix_accumulators() noexcept {
  return sizeof(typename Tile::type) >= 64 ? 16 : 8;
}

/// Outputs per block when one tile covers the columns: 16 where Arch has 32 vector registers (a
/// narrow tile inside an AVX-512 kernel too), else 8. Scheduling only: every output's additions
/// run in the same order either way.
template <class Tile, class Arch>
constexpr std::size_t mix_single_outputs() noexcept {
  if constexpr (simd::is_scalar_v<Arch>)
    return 8;
  else
    return sizeof(typename Tile::type) >= 64 || arch::vector_registers(Arch{}) >= 32 ? 16 : 8;
}

/// e[idx] = sum_{t < N} (bit t of idx ? -1 : +1) z[t] + first for idx < 2^N, built input by input:
/// e[idx + 2^t] = e[idx] - z[t], e[idx] += z[t]. (The cheaper e[idx] = e[idx - 2^t] - 2 z[t] would
/// turn an infinite input into NaN instead of -Inf.)
template <std::size_t N, class V>
SINGLEQUANT_INLINE void signed_sums(V* e, const V& first, const V* z) noexcept {
  e[0] = first;
  SINGLEQUANT_UNROLL
  for (std::size_t t = 0; t < N; ++t) {
    const std::size_t high = std::size_t{1} << t;
    SINGLEQUANT_UNROLL
    for (std::size_t idx = 0; idx < high; ++idx) {
      e[idx + high] = e[idx] - z[t];
      e[idx] += z[t];
    }
  }
}

/// table[idx * entry] = T[idx] = sum_{t < G} (bit t of idx ? -1 : +1) z[t] for idx < 2^G, met in the
/// middle: with lo = G / 2 and a the low lo bits of idx, b the next G - 1 - lo bits,
/// T[a + 2^lo b] = L[a] + U[b] for the half whose top bit is clear (L: signed sums of z[0..lo),
/// U: z[G-1] plus signed sums of z[lo..G-1)), and T[2^G - 1 - idx] = -T[idx] (exact negation) for
/// the other half: 2^G + O(2^(G/2)) additions instead of 2^(G+1). Every entry is a signed sum of
/// distinct inputs, so an infinite input gives +-Inf, never Inf - Inf.
template <class Tile, std::size_t Entry, std::size_t G, class T>
SINGLEQUANT_INLINE void build_table(T* table, const typename Tile::type* z) noexcept {
  using V = typename Tile::type;
  constexpr std::size_t entry = Entry, size = std::size_t{1} << G;
  constexpr std::size_t lo = G / 2, hi = G - 1 - lo;
  V u[std::size_t{1} << hi];
  signed_sums<hi>(u, z[G - 1], z + lo);
  if constexpr (lo == 0) {
    Tile::store(table, u[0]);
    Tile::store(table + entry, Tile::negate(u[0]));
  } else {
    // L[a]: the half with z[0] positive from the tree, the other half by negation.
    constexpr std::size_t half_l = std::size_t{1} << (lo - 1), mask_l = (std::size_t{1} << lo) - 1;
    V positive[half_l], l[std::size_t{1} << lo];
    signed_sums<lo - 1>(positive, z[0], z + 1);  // bit t of the index: the sign of z[t + 1]
    SINGLEQUANT_UNROLL
    for (std::size_t a = 0; a < half_l; ++a) {
      l[a << 1] = positive[a];
      l[(~(a << 1)) & mask_l] = Tile::negate(positive[a]);
    }
    SINGLEQUANT_UNROLL
    for (std::size_t b = 0; b < (std::size_t{1} << hi); ++b) {
      SINGLEQUANT_UNROLL
      for (std::size_t a = 0; a < (std::size_t{1} << lo); ++a) {
        const std::size_t idx = a + (b << lo);
        const V t = l[a] + u[b];
        Tile::store(table + idx * entry, t);
        Tile::store(table + (size - 1 - idx) * entry, Tile::negate(t));
      }
    }
  }
}

/// The tables of groups [first_group, end_group) for columns [q0, q0 + cols): T_j[idx] =
/// sum_t (bit t of idx ? -1 : +1) z_{j G + t}; a short last group has zero inputs beyond K.
template <class Tile, std::size_t Entry, std::size_t G, class T>
void build_tables(const T* x, std::size_t m, std::size_t q0, std::size_t cols, std::size_t k,
                  std::size_t first_group, std::size_t end_group, T* tables) noexcept {
  using V = typename Tile::type;
  constexpr std::size_t W = Tile::size, entry = Entry;
  for (std::size_t j = first_group; j < end_group; ++j) {
    T* table = tables + (j - first_group) * mix_table_stride(G) * entry;
    const std::size_t first = j * G;
    const bool full = first + G <= k;
    for (std::size_t v = 0; v < cols; v += W) {
      V z[G];
      SINGLEQUANT_UNROLL
      for (std::size_t t = 0; t < G; ++t)
        z[t] = full || first + t < k ? Tile::load(x + (first + t) * m + q0 + v) : Tile::broadcast(T(0));
      build_table<Tile, Entry, G>(table + v, z);
    }
  }
}

/// How many times mix_columns<Tile> steps its prefetch cursor over all column ranges (at least 1).
template <class Tile, class Arch>
std::size_t mix_prefetch_steps(std::size_t m, std::size_t cols, const mix_plan& plan) noexcept {
  constexpr std::size_t W = Tile::size, outputs = mix_accumulators<Tile>() / 2;
  constexpr std::size_t single = mix_single_outputs<Tile, Arch>();
  const std::size_t chunks = (plan.groups + plan.chunk_groups - 1) / plan.chunk_groups;
  const std::size_t per_chunk = cols / (2 * W) * (plan.k / outputs) + cols % (2 * W) / W * (plan.k / single);
  const std::size_t steps = (m + cols - 1) / cols * chunks * per_chunk;
  return steps > 0 ? steps : 1;
}

/// Columns [q0, q0 + cols) of the K x m block product, in place (see the file comment); cols is at
/// most one table entry and a multiple of Tile::size. tables and acc are scratch; every block of
/// outputs steps `ahead` once.
template <class Tile, std::size_t Entry, class Arch, class T>
void mix_columns(T* x, std::size_t m, std::size_t q0, std::size_t cols, const mix_plan& plan,
                 T scale, const T* out_signs, T* tables, T* acc, prefetch_cursor<T>& ahead) noexcept {
  constexpr std::size_t W = Tile::size;
  const std::size_t g = plan.group_size;
  for (std::size_t chunk = 0; chunk < plan.groups; chunk += plan.chunk_groups) {
    const std::size_t chunk_end = chunk + plan.chunk_groups < plan.groups ? chunk + plan.chunk_groups
                                                                         : plan.groups;
    // Tables: T_j[idx] = sum_t (bit t of idx ? -1 : +1) z_{j g + t} (build_table). A short last
    // group has zero inputs beyond K.
    switch (g) {  // compile-time group sizes: each table is built in registers, then stored
      case 1: build_tables<Tile, Entry, 1>(x, m, q0, cols, plan.k, chunk, chunk_end, tables); break;
      case 2: build_tables<Tile, Entry, 2>(x, m, q0, cols, plan.k, chunk, chunk_end, tables); break;
      case 3: build_tables<Tile, Entry, 3>(x, m, q0, cols, plan.k, chunk, chunk_end, tables); break;
      case 4: build_tables<Tile, Entry, 4>(x, m, q0, cols, plan.k, chunk, chunk_end, tables); break;
      case 5: build_tables<Tile, Entry, 5>(x, m, q0, cols, plan.k, chunk, chunk_end, tables); break;
      case 6: build_tables<Tile, Entry, 6>(x, m, q0, cols, plan.k, chunk, chunk_end, tables); break;
      case 7: build_tables<Tile, Entry, 7>(x, m, q0, cols, plan.k, chunk, chunk_end, tables); break;
      default: build_tables<Tile, Entry, 8>(x, m, q0, cols, plan.k, chunk, chunk_end, tables); break;
    }
    const std::size_t chunk_groups = chunk_end - chunk;
    const mix_output<T> out{acc, x + q0, m, scale, out_signs != nullptr ? out_signs + q0 : nullptr,
                            chunk_end == plan.groups};
    std::size_t v = 0;
    for (; v + 2 * W <= cols; v += 2 * W) {  // two column tiles per index load
      constexpr std::size_t outputs = mix_accumulators<Tile>() / 2;
      std::size_t r = 0;
      for (; r + outputs <= plan.k; r += outputs) {
        ahead.template step<Arch>();
        accumulate_outputs<Tile, Entry, outputs, 2>(plan, r, chunk, chunk_groups, tables, out, v);
      }
      for (; r < plan.k; ++r) accumulate_outputs<Tile, Entry, 1, 2>(plan, r, chunk, chunk_groups, tables, out, v);
    }
    for (; v < cols; v += W) {
      constexpr std::size_t outputs = mix_single_outputs<Tile, Arch>();
      std::size_t r = 0;
      for (; r + outputs <= plan.k; r += outputs) {
        ahead.template step<Arch>();
        accumulate_outputs<Tile, Entry, outputs, 1>(plan, r, chunk, chunk_groups, tables, out, v);
      }
      if constexpr (outputs > 8)
        for (; r + 8 <= plan.k; r += 8) accumulate_outputs<Tile, Entry, 8, 1>(plan, r, chunk, chunk_groups, tables, out, v);
      for (; r < plan.k; ++r) accumulate_outputs<Tile, Entry, 1, 1>(plan, r, chunk, chunk_groups, tables, out, v);
    }
  }
}

template <class T, class Arch>
void mix_impl(T* x, std::size_t m, const mix_plan& plan, T scale, const T* out_signs, T* scratch,
              const T* prefetch, std::size_t prefetch_elements) noexcept {
  using tile = column_tile<T, Arch>;
  constexpr std::size_t full = mix_entry_bytes / sizeof(T);
  const std::size_t entry = plan.entry != 0 ? plan.entry : full;
  T* acc = scratch + (plan.chunk_groups * mix_table_stride(plan.group_size) + 1) * entry;
  const std::size_t cols = m < entry ? m : entry;
  // The prefetch is spread evenly over the steps of mix_columns, so that the fetches overlap the
  // lookups instead of arriving in one burst.
  auto run = [&](auto tile_tag) {
    using Tile = typename decltype(tile_tag)::type;
    prefetch_cursor<T> ahead(prefetch, prefetch_elements, false);
    ahead.spread_over(mix_prefetch_steps<Tile, Arch>(m, cols, plan));
    // The entry length as a compile-time constant (immediate table offsets): full, or the compact
    // entries of short blocks that hold at least one tile (cols >= Tile::size).
    auto columns = [&](auto entry_tag) {
      constexpr std::size_t E = decltype(entry_tag)::value;
      for (std::size_t q0 = 0; q0 < m; q0 += cols)
        mix_columns<Tile, E, Arch>(x, m, q0, cols, plan, scale, out_signs, scratch, acc, ahead);
    };
    if constexpr (Tile::size * 8 <= full)
      if (entry == full / 8) return columns(std::integral_constant<std::size_t, full / 8>{});
    if constexpr (Tile::size * 4 <= full)
      if (entry == full / 4) return columns(std::integral_constant<std::size_t, full / 4>{});
    if constexpr (Tile::size * 2 <= full)
      if (entry == full / 2) return columns(std::integral_constant<std::size_t, full / 2>{});
    columns(std::integral_constant<std::size_t, full>{});
  };
  if constexpr (!simd::is_scalar_v<Arch>) {
    if (cols >= tile::size) {
      run(std::type_identity<tile>{});
      return;
    }
    // Blocks narrower than a batch (m = 4, 8 on AVX-512): half and quarter registers.
    using half = arch::narrow_ops_t<T, Arch, 32>;
    using quarter = arch::narrow_ops_t<T, Arch, 16>;
    if constexpr (!std::is_void_v<half>) {
      if (cols >= half::size) {
        run(std::type_identity<half>{});
        return;
      }
    }
    if constexpr (!std::is_void_v<quarter>) {
      if (cols >= quarter::size) {
        run(std::type_identity<quarter>{});
        return;
      }
    }
  }
  run(std::type_identity<column_tile<T, Arch, true>>{});
}

template <class T, class Arch>
void fwht_impl(T* x, std::size_t log2_n, T scale, const T* in_signs, const T* out_signs) noexcept {
  if constexpr (simd::is_scalar_v<Arch>) {
    fwht_scalar<T, Arch>(x, log2_n, scale, in_signs, out_signs);
  } else {
    const lane_context<T, Arch> lanes;
    fwht_simd<T, Arch>(x, log2_n, scale, in_signs, out_signs, lanes);
  }
}

template <class T, class Arch>
void fwht_rows_impl(T* x, std::size_t rows, std::size_t row_stride, std::size_t log2_n, T scale,
                    const T* in_signs, const T* out_signs, std::size_t sign_stride) noexcept {
  auto row_signs = [&](const T* signs, std::size_t i) {
    return signs != nullptr ? signs + i * sign_stride : nullptr;
  };
  if constexpr (simd::is_scalar_v<Arch>) {
    for (std::size_t i = 0; i < rows; ++i)
      fwht_scalar<T, Arch>(x + i * row_stride, log2_n, scale, row_signs(in_signs, i),
                           row_signs(out_signs, i));
  } else {
    const lane_context<T, Arch> lanes;
    const std::size_t n = std::size_t{1} << log2_n;
    constexpr std::size_t W = xsimd::batch<T, Arch>::size;
    constexpr std::size_t log2_w = log2_of(W);
    if (log2_n >= log2_w && log2_n <= log2_w + max_radix_bits<T, Arch>() && n * sizeof(T) < 4096) {
      // Short rows (the K blocks of a non-power-of-two transform): one leaf block per row, the
      // radix chosen once (fwht_simd's leaf-only case, without its per-row dispatch).
      auto run = [&](auto radix) {
        constexpr std::size_t R = decltype(radix)::value;
        for (std::size_t i = 0; i < rows; ++i)
          radix_block<R, true, true>(x + i * row_stride, W, lanes, scale, row_signs(in_signs, i),
                                     row_signs(out_signs, i));
      };
      switch (log2_n - log2_w) {
        case 0: run(std::integral_constant<std::size_t, 1>{}); break;
        case 1: run(std::integral_constant<std::size_t, 2>{}); break;
        case 2: run(std::integral_constant<std::size_t, 4>{}); break;
        case 3: run(std::integral_constant<std::size_t, 8>{}); break;
        default: run(std::integral_constant<std::size_t, 16>{}); break;
      }
      return;
    }
    if (log2_n < log2_w && row_stride == n && (sign_stride == n || (in_signs == nullptr && out_signs == nullptr))) {
      // Rows shorter than a register, back to back (the K blocks of 4 or 8 floats of an AVX-512
      // K x 2^k transform): W / n rows per register, only the levels within each row.
      auto run = [&](auto row_length) {
        using batch = xsimd::batch<T, Arch>;
        constexpr std::size_t N = decltype(row_length)::value;
        const std::size_t whole = rows * n / W * W;
        const batch s(scale);
        for (std::size_t e = 0; e < whole; e += W) {
          batch v = batch::load_unaligned(x + e);
          if (in_signs != nullptr) v *= batch::load_unaligned(in_signs + e);
          v = lanes.template levels_below<N>(v);
          if (out_signs != nullptr)
            v *= s * batch::load_unaligned(out_signs + e);
          else
            v *= s;
          v.store_unaligned(x + e);
        }
        for (std::size_t i = whole / n; i < rows; ++i)
          fwht_scalar<T, Arch>(x + i * n, log2_n, scale, row_signs(in_signs, i), row_signs(out_signs, i));
      };
      switch (log2_n) {
        case 0: run(std::integral_constant<std::size_t, 1>{}); break;
        case 1: run(std::integral_constant<std::size_t, 2>{}); break;
        case 2: run(std::integral_constant<std::size_t, 4>{}); break;
        default: run(std::integral_constant<std::size_t, 8>{}); break;
      }
      return;
    }
    for (std::size_t i = 0; i < rows; ++i) {
      // Memory-resident batches: the leaf pass of a row prefetches the next row (one row ahead).
      const bool ahead = i + 1 < rows && n * sizeof(T) >= 4096;
      fwht_simd<T, Arch>(x + i * row_stride, log2_n, scale, row_signs(in_signs, i),
                         row_signs(out_signs, i), lanes, ahead ? x + (i + 1) * row_stride : nullptr);
    }
  }
}

/// The Hadamard kernels. Signs pointers may be null (no signs).
template <class Arch>
struct hadamard_kernel {
  /// x <- scale * ((x .* in_signs) H_n) .* out_signs in place, n = 2^log2_n.
  static void fwht(float* x, std::size_t log2_n, float scale, const float* in_signs,
                   const float* out_signs) noexcept;
  static void fwht(double* x, std::size_t log2_n, double scale, const double* in_signs,
                   const double* out_signs) noexcept;
  /// fwht on rows x + i * row_stride, i < rows; row i uses the signs at offset i * sign_stride
  /// (sign_stride 0: the same signs for every row).
  static void fwht_rows(float* x, std::size_t rows, std::size_t row_stride, std::size_t log2_n,
                        float scale, const float* in_signs, const float* out_signs,
                        std::size_t sign_stride) noexcept;
  static void fwht_rows(double* x, std::size_t rows, std::size_t row_stride, std::size_t log2_n,
                        double scale, const double* in_signs, const double* out_signs,
                        std::size_t sign_stride) noexcept;
  /// y_r = scale * sum_s C[s][r] z_s .* out_signs_r over the K blocks of length m of x (in place);
  /// scratch: mix_scratch_elements<T>(...) elements. prefetch[0, prefetch_elements) (may be null:
  /// the next block of a batch) is prefetched along the way (prefetch_cursor: into L1 up to 16 KiB,
  /// else L2); it does not change the result.
  static void mix(float* x, std::size_t m, const mix_plan& plan, float scale, const float* out_signs,
                  float* scratch, const float* prefetch, std::size_t prefetch_elements) noexcept;
  static void mix(double* x, std::size_t m, const mix_plan& plan, double scale,
                  const double* out_signs, double* scratch, const double* prefetch,
                  std::size_t prefetch_elements) noexcept;
};

template <class Arch>
void hadamard_kernel<Arch>::fwht(float* x, std::size_t log2_n, float scale, const float* in_signs,
                                 const float* out_signs) noexcept {
  fwht_impl<float, Arch>(x, log2_n, scale, in_signs, out_signs);
}
template <class Arch>
void hadamard_kernel<Arch>::fwht(double* x, std::size_t log2_n, double scale,
                                 const double* in_signs, const double* out_signs) noexcept {
  fwht_impl<double, Arch>(x, log2_n, scale, in_signs, out_signs);
}
template <class Arch>
void hadamard_kernel<Arch>::fwht_rows(float* x, std::size_t rows, std::size_t row_stride,
                                      std::size_t log2_n, float scale, const float* in_signs,
                                      const float* out_signs, std::size_t sign_stride) noexcept {
  fwht_rows_impl<float, Arch>(x, rows, row_stride, log2_n, scale, in_signs, out_signs, sign_stride);
}
template <class Arch>
void hadamard_kernel<Arch>::fwht_rows(double* x, std::size_t rows, std::size_t row_stride,
                                      std::size_t log2_n, double scale, const double* in_signs,
                                      const double* out_signs, std::size_t sign_stride) noexcept {
  fwht_rows_impl<double, Arch>(x, rows, row_stride, log2_n, scale, in_signs, out_signs, sign_stride);
}
template <class Arch>
void hadamard_kernel<Arch>::mix(float* x, std::size_t m, const mix_plan& plan, float scale,
                                const float* out_signs, float* scratch, const float* prefetch,
                                std::size_t prefetch_elements) noexcept {
  mix_impl<float, Arch>(x, m, plan, scale, out_signs, scratch, prefetch, prefetch_elements);
}
template <class Arch>
void hadamard_kernel<Arch>::mix(double* x, std::size_t m, const mix_plan& plan, double scale,
                                const double* out_signs, double* scratch, const double* prefetch,
                                std::size_t prefetch_elements) noexcept {
  mix_impl<double, Arch>(x, m, plan, scale, out_signs, scratch, prefetch, prefetch_elements);
}

SINGLEQUANT_EXTERN_KERNEL(hadamard_kernel)

}  // namespace detail
SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_DETAIL_FWHT_KERNELS_HPP
