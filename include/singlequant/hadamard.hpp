// singlequant/hadamard.hpp - Hadamard matrices and fast Hadamard transforms.
//
// Conventions (row vectors, as everywhere in singlequant: x -> x R):
//  * Sylvester (natural) order: H_1 = [1], H_2n = [[H_n, H_n], [H_n, -H_n]], so
//    H_n[i][j] = (-1)^popcount(i & j); H_n is symmetric and H_n H_n = n I.
//  * normalization::orthonormal scales by 1 / sqrt(n) (the transform is then orthogonal and its own
//    inverse for powers of two); normalization::none leaves the +-1 sums.
//  * Non-power-of-two orders n = K * 2^k use H_n = H_K (x) H_{2^k} with the row-major reshape
//    X[p][q] = x[p * 2^k + q] (p < K, q < 2^k): x H_n = vec(H_K^T X H_{2^k}), i.e. an FWHT of every
//    length-2^k block followed by y_r = sum_s H_K[s][r] z_s across the K blocks. K is the smallest
//    supported base (factor_hadamard_size), and hadamard_matrix(n) is exactly this H_K (x) H_{2^k}.
//  * Every matrix has an all +1 first row and first column.
#ifndef SINGLEQUANT_HADAMARD_HPP
#define SINGLEQUANT_HADAMARD_HPP

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "config.hpp"
#include "detail/fwht_kernels.hpp"
#include "detail/hadamard_construction.hpp"
#include "detail/random.hpp"
#include "simd.hpp"
#include "view.hpp"

SINGLEQUANT_BEGIN_NAMESPACE

/// Scaling of a Hadamard transform: none (entries +-1) or orthonormal (entries +-1/sqrt(n)).
enum class normalization { none, orthonormal };

/// Largest FWHT length: 2^20.
inline constexpr std::size_t max_fwht_log2_size = 20;

namespace detail {

template <class T>
concept transform_scalar = float_or_double<T>;  // deprecated spelling, kept for one minor release

/// The supported orders nearest to n from below and above, as text for error messages.
inline std::string nearest_supported_orders(std::size_t n) {
  std::unordered_map<std::size_t, bool> memo;
  std::size_t below = 0;
  for (std::size_t m = n; m-- > 1;) {
    if ((m <= 2 || m % 4 == 0) && order_supported(m, memo)) {
      below = m;
      break;
    }
  }
  std::size_t above = n + 1;
  while (!((above <= 2 || above % 4 == 0) && order_supported(above, memo))) ++above;
  return below == 0 ? message("nearest supported order: ", above)
                    : message("nearest supported orders: ", below, " and ", above);
}

inline void check_supported_order(bool supported, std::string_view function, const char* what,
                                  std::size_t n) {
  if (supported) [[likely]]
    return;
  fail(function, message(what, " ", n, " has no Hadamard matrix singlequant can build (orders are 1, 2 "
                                       "or multiples of 4 reachable by Sylvester, Paley I/II, "
                                       "Goethals-Seidel 156/172 and Kronecker products); ",
                         nearest_supported_orders(n)));
}

inline std::size_t log2_exact(std::size_t n) noexcept {
  std::size_t k = 0;
  while ((std::size_t{1} << k) < n) ++k;
  return k;
}

inline bool is_power_of_two(std::size_t n) noexcept { return n != 0 && (n & (n - 1)) == 0; }

inline void check_fwht_length(std::size_t n, std::string_view function) {
  if (is_power_of_two(n) && n <= (std::size_t{1} << max_fwht_log2_size)) [[likely]]
    return;
  if (n == 0) fail(function, "length 0 (the FWHT needs n = 2^k, k = 0..20)");
  if (is_power_of_two(n))
    fail(function, message("length ", n, " exceeds the largest FWHT length 2^20 = ",
                           std::size_t{1} << max_fwht_log2_size));
  const std::size_t above = std::size_t{1} << log2_exact(n);
  fail(function, message("length ", n, " is not a power of two (nearest: ", above / 2, " and ", above,
                         "); hadamard_transform handles n = K * 2^k"));
}

/// Per-thread scratch, 64-byte aligned (table entries then never straddle cache lines); grown as
/// needed, never shrunk.
template <class T>
T* thread_scratch(std::size_t elements) {
  constexpr std::size_t align = 64 / sizeof(T);
  thread_local std::vector<T> buffer;
  if (buffer.size() < elements + align) buffer.resize(elements + align);
  const auto address = reinterpret_cast<std::uintptr_t>(buffer.data());
  return buffer.data() + (align - address / sizeof(T) % align) % align;
}

/// Four-Russians schedule of C for y_r = sum_s C[s][r] z_s, C = H (transpose = false) or H^T, with
/// table offsets for elements of `element_bytes` bytes (see mix_plan). forced_group_size /
/// forced_chunk_groups nonzero override the cost model (the arch tests cover every group size).
/// block_length: the m of the K x m blocks the plan is for (0: any; entries of mix_entry_bytes),
/// which sets the table entry length (mix_entry_bytes_for).
struct mix_schedule {
  std::size_t group_size = 1, groups = 0, chunk_groups = 1;
  std::size_t entry_elements = 0;  // elements between two table entries
  std::vector<std::uint16_t> lookup;

  mix_schedule() = default;
  mix_schedule(const sign_matrix& h, std::size_t k, bool transpose, std::size_t element_bytes,
               std::size_t forced_group_size = 0, std::size_t forced_chunk_groups = 0,
               std::size_t block_length = 0) {
    const std::size_t entry_bytes =
        block_length == 0 ? mix_entry_bytes : mix_entry_bytes_for(block_length, element_bytes);
    // Vector operations per column register: tables groups * 2^g (one addition or negation per
    // entry), lookups k * groups, accumulator traffic 2 k per chunk, where a chunk's tables fill at
    // most ~24 KiB of L1 (K = 172 and 108: g = 5, 6 tables per chunk).
    const std::size_t table_budget = 24576 / entry_bytes;
    std::size_t best_cost = ~std::size_t{0};
    for (std::size_t g = 1; g <= 8; ++g) {
      const std::size_t count = (k + g - 1) / g, entries = std::size_t{1} << g;
      const std::size_t chunk = entries >= table_budget ? 1 : table_budget / entries;
      const std::size_t cost = count * entries + k * count + 2 * k * ((count + chunk - 1) / chunk);
      if ((forced_group_size == 0 && cost < best_cost) || g == forced_group_size) {
        best_cost = cost;
        group_size = g;
        groups = count;
        chunk_groups = chunk < count ? chunk : count;
      }
    }
    if (forced_chunk_groups != 0) chunk_groups = forced_chunk_groups < groups ? forced_chunk_groups : groups;
    // 16-bit offsets: a chunk's tables span at most 2^16 elements.
    const std::size_t entry = entry_bytes / element_bytes;
    entry_elements = entry;
    const std::size_t table_elements = mix_table_stride(group_size) * entry;
    if (chunk_groups * table_elements > 65536) chunk_groups = 65536 / table_elements;
    lookup.assign(k * groups, 0);
    for (std::size_t r = 0; r < k; ++r)
      for (std::size_t j = 0; j < groups; ++j) {
        std::size_t index = 0;
        for (std::size_t t = 0; t < group_size && j * group_size + t < k; ++t) {
          const std::size_t s = j * group_size + t;
          const std::int8_t c = transpose ? h[r * k + s] : h[s * k + r];
          if (c < 0) index |= std::size_t{1} << t;
        }
        lookup[j * k + r] =
            static_cast<std::uint16_t>(((j % chunk_groups) * mix_table_stride(group_size) + index) * entry);
      }
  }
  [[nodiscard]] mix_plan plan(std::size_t k) const noexcept {
    return mix_plan{k, group_size, groups, chunk_groups, lookup.data(), entry_elements};
  }
};

}  // namespace detail

/// In-place fast Walsh-Hadamard transform x <- x H_n (Sylvester order, see the file comment),
/// scaled by 1/sqrt(n) when norm is orthonormal. n = x.size() must be 2^k with k = 0..20.
/// Example: std::vector<float> x{1, 0, 0, 0}; fwht(vector_view<float>(x));  // x == {.5, .5, .5, .5}
template <float_or_double T>
void fwht(vector_view<T> x, normalization norm = normalization::orthonormal) {
  detail::check_fwht_length(x.size(), "fwht");
  const std::size_t log2_n = detail::log2_exact(x.size());
  const T scale = norm == normalization::orthonormal ? T(1) / std::sqrt(T(x.size())) : T(1);
  detail::dispatch([&](auto arch) {
    detail::hadamard_kernel<decltype(arch)>::fwht(x.data(), log2_n, scale, nullptr, nullptr);
  });
}

/// fwht on every row of x (tokens x channels); the row length must be 2^k with k = 0..20.
template <float_or_double T>
void fwht_rows(matrix_view<T> x, normalization norm = normalization::orthonormal) {
  detail::check_fwht_length(x.cols(), "fwht_rows");
  const std::size_t log2_n = detail::log2_exact(x.cols());
  const T scale = norm == normalization::orthonormal ? T(1) / std::sqrt(T(x.cols())) : T(1);
  detail::dispatch([&](auto arch) {
    detail::hadamard_kernel<decltype(arch)>::fwht_rows(x.data(), x.rows(), x.row_stride(), log2_n,
                                                       scale, nullptr, nullptr, 0);
  });
}

/// Container overload: fwht(v) for a std::vector<float>, std::array<double, N>, ...
template <class R>
  requires float_or_double<std::ranges::range_value_t<R>> &&
           (!std::is_const_v<std::remove_reference_t<std::ranges::range_reference_t<R>>>)
void fwht(R&& x, normalization norm = normalization::orthonormal) {
  fwht(vector_view<std::ranges::range_value_t<R>>(x), norm);
}

/// True when hadamard_matrix(n) can build an exact +-1 matrix of order n: n = 1, 2, or a multiple of 4
/// reachable by Sylvester, Paley I/II (prime-power fields), the stored Goethals-Seidel orders 156 and
/// 172, and Kronecker products of these. (Orders such as 92, 116 or 188 exist but are not built.)
[[nodiscard]] inline bool is_hadamard_order_supported(std::size_t n) {
  return detail::order_supported(n);
}

/// n = base * pow2 with pow2 a power of two and base the smallest supported Hadamard order.
struct hadamard_factorization {
  std::size_t base = 1;
  std::size_t pow2 = 1;
};

/// The factorization the transforms use (11008 -> {172, 64}, 13824 -> {108, 128}, 4096 -> {1, 4096}),
/// or nullopt when n is not a supported order.
[[nodiscard]] inline std::optional<hadamard_factorization> factor_hadamard_size(std::size_t n) {
  const auto f = detail::factor_base_pow2(n);
  if (!f) return std::nullopt;
  return hadamard_factorization{f->first, f->second};
}

/// Largest base order K a hadamard_transform takes (n = K 2^k): the fast apply keeps H_K densely,
/// with a mix schedule, in O(K^2) memory and construction time (about 1 s at the limit; base 65552,
/// from a 64-byte transform blob of width 131104, took 283 s and 21 GB). LLM widths need K <= 924.
inline constexpr std::size_t max_hadamard_base_order = 4096;

/// Largest order hadamard_matrix builds densely (n * n bytes).
inline constexpr std::size_t max_dense_hadamard_order = 16384;

/// The +-1 Hadamard matrix of order n, n x n row-major: H_K (x) H_{2^k} for the factorization of
/// factor_hadamard_size(n), with H_K built by Paley I (preferred), Paley II, Goethals-Seidel or a
/// Kronecker product; H H^T = n I and the first row and column are +1.
/// Error: an unsupported n (the message names n and the nearest supported orders) or n > 16384.
[[nodiscard]] inline std::vector<std::int8_t> hadamard_matrix(std::size_t n) {
  detail::check_supported_order(detail::order_supported(n), "hadamard_matrix", "order", n);
  detail::check(n <= max_dense_hadamard_order, "hadamard_matrix", "order ", n,
                " needs n * n bytes; the dense limit is ", max_dense_hadamard_order,
                " (use hadamard_transform to apply it)");
  return detail::build_hadamard(n);
}

/// Options of hadamard_transform.
struct hadamard_options {
  /// Multiply by a fixed +-1 diagonal D before the Hadamard: R = D H. The signs come from splitmix64
  /// seeded with `seed`: state = seed; for i = 0..n-1: state += 0x9E3779B97F4A7C15, z = mix(state),
  /// d_i = (z >> 63) ? -1 : +1 (mix: the splitmix64 finaliser), identical on every platform.
  bool randomized = false;
  std::uint64_t seed = 0;
  /// Block-diagonal Hadamard I_{n/b} (x) H_b with b = block_size (0 = n); b must divide n and be a
  /// supported order.
  std::size_t block_size = 0;
};

/// An orthonormal Hadamard transform of size n: R = D (I_{n/b} (x) H_b) / sqrt(b), with D = I unless
/// randomized, b = n unless block_size is set, and H_b = H_K (x) H_{2^k} applied in
/// O(b (log2 2^k + K)) per block (see the file comment). Row-vector convention: apply(x) is x R.
/// Cheap to copy (the plan is shared, immutable); apply* are const and thread-safe.
/// Example: hadamard_transform<float> h(11008); h.apply_rows(activations);  // tokens x 11008
template <float_or_double T>
class hadamard_transform {
 public:
  /// Error: n == 0, a block size that does not divide n, or an unsupported (block) order; the
  /// message names the order and the nearest supported ones.
  explicit hadamard_transform(std::size_t n, hadamard_options options = {})
      : state_(std::make_shared<const state>(n, options)) {}

  /// The transform size n.
  [[nodiscard]] std::size_t size() const noexcept { return state_->n; }
  /// The Hadamard block size b (n unless block_size was set).
  [[nodiscard]] std::size_t block_size() const noexcept { return state_->block; }
  /// The factorization b = base * pow2 of the block size used by the fast apply.
  [[nodiscard]] hadamard_factorization factorization() const noexcept {
    return {state_->base, state_->pow2};
  }
  [[nodiscard]] const hadamard_options& options() const noexcept { return state_->options; }

  /// x <- x R. Error: x.size() != size().
  void apply(vector_view<T> x) const {
    detail::check(x.size() == state_->n, "hadamard_transform::apply", "vector length ", x.size(),
                  " != transform size ", state_->n);
    run(x.data(), 1, x.size(), false);
  }
  /// x <- x R^T (the inverse). Error: x.size() != size().
  void apply_inverse(vector_view<T> x) const {
    detail::check(x.size() == state_->n, "hadamard_transform::apply_inverse", "vector length ",
                  x.size(), " != transform size ", state_->n);
    run(x.data(), 1, x.size(), true);
  }
  /// Every row of x (tokens x channels) <- row R. Error: x.cols() != size(). NaN/Inf are not
  /// checked: one spreads over every channel of its own row (within its Hadamard block), no further.
  void apply_rows(matrix_view<T> x) const {
    detail::check(x.cols() == state_->n, "hadamard_transform::apply_rows", "row length ", x.cols(),
                  " != transform size ", state_->n, " (", x.rows(), " rows)");
    run(x.data(), x.rows(), x.row_stride(), false);
  }
  /// Every row of x <- row R^T. Error: x.cols() != size().
  void apply_rows_inverse(matrix_view<T> x) const {
    detail::check(x.cols() == state_->n, "hadamard_transform::apply_rows_inverse", "row length ",
                  x.cols(), " != transform size ", state_->n, " (", x.rows(), " rows)");
    run(x.data(), x.rows(), x.row_stride(), true);
  }

  /// R as an n x n row-major matrix in double precision: apply(x) == x * R (to rounding).
  [[nodiscard]] std::vector<double> to_dense() const {
    const state& s = *state_;
    const std::size_t n = s.n, b = s.block, m = s.pow2, k = s.base;
    std::vector<double> r = detail::checked_vector<double>("hadamard_transform::to_dense", "n x n matrix", n * n);
    const double scale = 1.0 / std::sqrt(static_cast<double>(b));
    for (std::size_t i = 0; i < n; ++i) {
      const double d = s.options.randomized ? static_cast<double>(s.signs[i]) : 1.0;
      const std::size_t block_start = i / b * b, u = i - block_start;
      for (std::size_t v = 0; v < b; ++v) {
        // H_b[u][v] = H_K[u / m][v / m] * (-1)^popcount((u % m) & (v % m))
        const int base = k == 1 ? 1 : (*s.base_matrix)[(u / m) * k + v / m];
        std::size_t bits = (u % m) & (v % m), parity = 0;
        for (; bits != 0; bits &= bits - 1) parity ^= 1;
        r[i * n + block_start + v] = d * scale * (parity ? -base : base);
      }
    }
    return r;
  }

 private:
  struct state {
    std::size_t n = 0, block = 0, base = 1, pow2 = 1, log2_pow2 = 0;
    hadamard_options options;
    T scale = T(1);
    std::shared_ptr<const detail::sign_matrix> base_matrix;  // H_K, K > 1 only
    detail::mix_schedule forward, inverse;                   // C = H_K and C = H_K^T
    std::vector<T> signs;                                    // D, randomized only

    state(std::size_t size, hadamard_options opts) : n(size), options(opts) {
      detail::check(size > 0, "hadamard_transform", "size 0");
      block = opts.block_size == 0 ? size : opts.block_size;
      detail::check(size % block == 0, "hadamard_transform", "block size ", block,
                    " does not divide the size ", size);
      const auto f = detail::factor_base_pow2(block);
      detail::check_supported_order(f.has_value(), "hadamard_transform",
                                    opts.block_size == 0 ? "order" : "block size", block);
      base = f->first;
      pow2 = f->second;
      detail::check(base <= max_hadamard_base_order, "hadamard_transform", opts.block_size == 0 ? "order " : "block size ",
                    block, " = ", base, " x ", pow2, ": the base order ", base, " exceeds max_hadamard_base_order (",
                    max_hadamard_base_order, "; its dense H_K costs K^2)");
      log2_pow2 = detail::log2_exact(pow2);
      scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(block)));
      if (base > 1) {
        base_matrix = detail::cached_hadamard(base);
        forward = detail::mix_schedule(*base_matrix, base, false, sizeof(T), 0, 0, pow2);
        inverse = detail::mix_schedule(*base_matrix, base, true, sizeof(T), 0, 0, pow2);
      }
      if (opts.randomized) {
        signs.resize(size);
        detail::splitmix64 generator{opts.seed};
        for (auto& d : signs) d = (generator.next() >> 63) != 0 ? T(-1) : T(1);
      }
    }
  };

  void run(T* x, std::size_t rows, std::size_t row_stride, bool inverse) const {
    const state& s = *state_;
    const T* signs = s.options.randomized ? s.signs.data() : nullptr;
    if (rows == 0) return;
    if (s.base == 1) {
      // Pure FWHT blocks: one kernel call per block for all rows.
      detail::dispatch([&](auto arch) {
        using kernel = detail::hadamard_kernel<decltype(arch)>;
        for (std::size_t b0 = 0; b0 < s.n; b0 += s.block) {
          const T* d = signs != nullptr ? signs + b0 : nullptr;
          kernel::fwht_rows(x + b0, rows, row_stride, s.log2_pow2, s.scale, inverse ? nullptr : d,
                            inverse ? d : nullptr, 0);
        }
      });
      return;
    }
    const detail::mix_schedule& schedule = inverse ? s.inverse : s.forward;
    const detail::mix_plan plan = schedule.plan(s.base);
    T* scratch = detail::thread_scratch<T>(
        detail::mix_scratch_elements<T>(s.base, schedule.group_size, schedule.chunk_groups,
                                        schedule.entry_elements));
    detail::dispatch([&](auto arch) {
      using kernel = detail::hadamard_kernel<decltype(arch)>;
      for (std::size_t i = 0; i < rows; ++i) {
        T* row = x + i * row_stride;
        for (std::size_t b0 = 0; b0 < s.n; b0 += s.block) {
          const T* d = signs != nullptr ? signs + b0 : nullptr;
          // FWHT of the K blocks of length 2^k (with D first when forward), then the K x K product
          // (with D last when inverse) and the scale.
          kernel::fwht_rows(row + b0, s.base, s.pow2, s.log2_pow2, T(1), inverse ? nullptr : d,
                            nullptr, s.pow2);
          // The next block (of this row, else of the next row) is fetched while this one is mixed.
          const T* next = b0 + s.block < s.n ? row + b0 + s.block
                          : i + 1 < rows     ? row + row_stride
                                             : nullptr;
          kernel::mix(row + b0, s.pow2, plan, s.scale, inverse ? d : nullptr, scratch, next, s.block);
        }
      }
    });
  }

  std::shared_ptr<const state> state_;
};

SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_HADAMARD_HPP
