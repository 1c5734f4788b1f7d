// singlequant/int4_gemm.hpp - W4A4 products: INT4 activations times INT4 weights, int32 sums, float out.
//
//   int4_gemm_weights w(packed_weights);           // once per layer: the kernel layout
//   int4_gemm(packed_activations, w, y);           // y (M x N) = diag(sa) (A W^T) per scale group
//
// A (M x K) holds activation codes with per-row (or per-tensor) scales sa, W (N x K) weight codes with
// per-row, per-tensor or per-group scales sw; both symmetric (no zero points), either grid. With
// groups g of W's rows (one group of K for per-row scales):
//   y(m, n) = sa(m) * sum_g sw(n, g) * sum_{k in g} a(m, k) w(n, k)   [+ bias(n)] [+ y(m, n)]
// where the inner sums are exact int32 and the sum over g runs in increasing g with one float fma
// per group. The same call gives bit-identical results for any thread count. Paths: AVX-512 VNNI
// (vpdpbusd, picked at run time from CPUID even in an AVX-512BW build), AVX-512BW, AVX2, SSSE3,
// SSE2 and scalar, chosen like every kernel (simd.hpp). M = 1..8 is the decoding (GEMV) case: the
// same tiles, bound by reading the weights' 4-bit kernel layout once.
// The kernel layout (detail/int4_gemm_kernels.hpp, docs/int4_gemm.md): rows in panels of 16, each
// scale group padded to a multiple of 8 codes, 64-byte blocks of 16 rows x 8 codes holding u = code
// + 8 as nibbles; about the same bytes as packed_int4 plus one float scale per (row, group).
#ifndef SINGLEQUANT_INT4_GEMM_HPP
#define SINGLEQUANT_INT4_GEMM_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "config.hpp"
#include "detail/int4_gemm_kernels.hpp"
#include "detail/parallel.hpp"
#include "int4.hpp"
#include "simd.hpp"
#include "view.hpp"

SINGLEQUANT_BEGIN_NAMESPACE

/// Options of int4_gemm.
struct int4_gemm_options {
  std::span<const float> bias = {};  ///< empty, or N floats added to every output row
  bool accumulate = false;           ///< y += product (instead of y = product)
  std::size_t threads = 1;           ///< 0: every hardware thread; results do not depend on it
};

/// INT4 weights (N x K) repacked once into the kernel layout of int4_gemm (see the file comment).
/// Built from a symmetric packed_int4 with per_tensor, per_row or per_group scales.
/// Errors: zero points, per_column scales, a code outside the tensor's grid (-8 in a symmetric7
/// tensor), K >= 2^23 (int32 headroom), a non-finite scale.
class int4_gemm_weights {
 public:
  int4_gemm_weights() = default;
  explicit int4_gemm_weights(const packed_int4& w) : rows_(w.rows()), cols_(w.cols()), grid_(w.grid()) {
    constexpr const char* fn = "int4_gemm_weights";
    detail::check(!w.has_zero_points(), fn, "weights of ", w.rows(), " x ", w.cols(),
                  " have zero points; int4_gemm takes symmetric tensors");
    detail::check(w.gran() != granularity::per_column, fn, "per_column weight scales (", w.rows(), " x ",
                  w.cols(), ") are not supported; use per_row or per_group");
    // |corr + partial sum| <= (64 + 120) K stays inside int32 for K < 2^23.
    detail::check(w.cols() < (std::size_t{1} << 23), fn, "K = ", w.cols(), " exceeds 2^23 - 1");
    group_ = w.gran() == granularity::per_group ? w.group_size() : w.cols();
    groups_ = group_ == 0 ? 0 : w.cols() / group_;
    octets_ = (group_ + 7) / 8;
    panels_ = (rows_ + detail::int4_panel_rows - 1) / detail::int4_panel_rows;
    std::size_t blocks = 0, scale_count = 0;
    detail::check(!detail::multiply_overflows(panels_ * groups_, octets_, blocks) &&
                      !detail::multiply_overflows(blocks, detail::int4_block_bytes, blocks) &&
                      !detail::multiply_overflows(panels_ * groups_, detail::int4_panel_rows, scale_count),
                  fn, "size overflow: ", w.rows(), " x ", w.cols());
    detail::checked_assign(fn, "kernel codes", codes_, blocks);
    detail::checked_assign(fn, "kernel scales", scales_, scale_count);
    const int lowest = grid_min(w.grid());
    for (std::size_t n = 0; n < rows_; ++n) {
      const std::size_t panel = n / detail::int4_panel_rows, j = n % detail::int4_panel_rows;
      for (std::size_t g = 0; g < groups_; ++g) {
        const float s = w.scale(n, g * group_);
        detail::check(std::isfinite(s), fn, "scale of row ", n, " group ", g, " is not finite");
        scales_[(panel * groups_ + g) * detail::int4_panel_rows + j] = s;
        std::uint8_t* block = codes_.data() + (panel * groups_ + g) * octets_ * detail::int4_block_bytes;
        for (std::size_t k = 0; k < group_; ++k) {
          const int code = w.code(n, g * group_ + k);
          detail::check(code >= lowest, fn, "code ", code, " at (", n, ", ", g * group_ + k,
                        ") is outside the tensor's grid (min ", lowest, ")");
          const std::size_t o = k / 8, b = k % 4;
          const unsigned shift = (k % 8) < 4 ? 0u : 4u;
          std::uint8_t& byte = block[o * detail::int4_block_bytes + 4 * j + b];
          byte = static_cast<std::uint8_t>(byte | static_cast<unsigned>(code + 8) << shift);
        }
      }
    }
  }

  [[nodiscard]] std::size_t rows() const noexcept { return rows_; }
  [[nodiscard]] std::size_t cols() const noexcept { return cols_; }
  [[nodiscard]] int4_grid grid() const noexcept { return grid_; }
  /// Codes per scale group (cols() for per-row or per-tensor weights) and the group count.
  [[nodiscard]] std::size_t group_size() const noexcept { return group_; }
  [[nodiscard]] std::size_t groups() const noexcept { return groups_; }
  /// The kernel layout: panels() x groups() x ceil(group_size() / 8) blocks of 64 bytes.
  [[nodiscard]] std::size_t panels() const noexcept { return panels_; }
  [[nodiscard]] std::span<const std::uint8_t> codes() const noexcept { return codes_; }
  /// panels() x groups() x 16 scales (0 for the padding rows of the last panel).
  [[nodiscard]] std::span<const float> scales() const noexcept { return scales_; }

  /// The kernel's view of these weights (internal).
  void fill_problem(detail::int4_gemm_problem& p) const noexcept {
    p.w = codes_.data();
    p.w_scales = scales_.data();
    p.n = rows_;
    p.groups = groups_;
    p.octets = octets_;
  }

 private:
  std::size_t rows_ = 0, cols_ = 0, group_ = 0, groups_ = 0, octets_ = 0, panels_ = 0;
  int4_grid grid_ = int4_grid::symmetric7;
  std::vector<std::uint8_t, detail::cache_aligned_allocator<std::uint8_t>> codes_;
  std::vector<float> scales_;
};

namespace detail {

/// The activations of int4_gemm in the kernel's padded signed-byte layout (see int4_gemm_kernels.hpp).
struct int4_gemm_activations {
  std::vector<std::int8_t, cache_aligned_allocator<std::int8_t>> codes;
  std::vector<std::int32_t> corr;
  std::vector<float> scales;
  std::size_t lda = 0;
};

inline void prepare_int4_activations(const packed_int4& a, const int4_gemm_weights& w,
                                     int4_gemm_activations& out) {
  constexpr const char* fn = "int4_gemm";
  const std::size_t m = a.rows(), groups = w.groups(), group = w.group_size();
  const std::size_t padded = (group + 7) / 8 * 8;
  out.lda = groups * padded;
  std::size_t bytes = 0, corr = 0;
  check(!multiply_overflows(m, out.lda, bytes) && !multiply_overflows(m, groups, corr), fn,
        "size overflow: ", m, " x ", a.cols());
  checked_assign(fn, "activation codes", out.codes, bytes);
  checked_assign(fn, "activation sums", out.corr, corr);
  checked_assign(fn, "activation scales", out.scales, m);
  const int lowest = grid_min(a.grid());
  for (std::size_t i = 0; i < m; ++i) {
    out.scales[i] = a.scale(i, 0);
    check(std::isfinite(out.scales[i]), fn, "activation scale of row ", i, " is not finite");
    const std::uint8_t* row = a.row_codes(i).data();
    std::int8_t* dst = out.codes.data() + i * out.lda;
    for (std::size_t g = 0; g < groups; ++g) {
      std::int32_t sum = 0;
      int low = 0;
      std::size_t k = 0;
      if (group % 2 == 0) {
        // Whole bytes (the group starts on one): a branch-free loop that -O3 vectorises, so
        // that preparing a decoding token costs little next to the GEMV.
        const std::uint8_t* src = row + g * group / 2;
        std::int8_t* codes = dst + g * padded;
        unsigned eights = 0;  // nibble 8 is code -8, the only code outside symmetric7
        for (std::size_t j = 0; j < group / 2; ++j) {
          const unsigned byte = src[j];
          const int lo = static_cast<int>(byte & 15u) - static_cast<int>((byte & 8u) << 1);
          const int hi = static_cast<int>(byte >> 4) - static_cast<int>((byte & 0x80u) >> 3);
          codes[2 * j] = static_cast<std::int8_t>(lo);
          codes[2 * j + 1] = static_cast<std::int8_t>(hi);
          sum += lo + hi;
          eights |= static_cast<unsigned>((byte & 15u) == 8u) | static_cast<unsigned>((byte >> 4) == 8u);
        }
        low = eights != 0 ? -8 : 0;
        k = group;
      }
      for (; k < group; ++k) {
        const std::size_t col = g * group + k;
        const std::int8_t code = from_nibble(row[col / 2] >> (4 * (col % 2)));
        dst[g * padded + k] = code;
        sum += code;
        low = std::min<int>(low, code);
      }
      check(low >= lowest, fn, "activation row ", i, " has code ", low, " outside its grid (min ",
            lowest, ")");
      out.corr[i * groups + g] = -8 * sum;
    }
  }
}

}  // namespace detail

/// y (M x N) = diag(sa) (A W^T) with per-group weight scales (formula in the file comment), plus
/// bias, or added to y with options.accumulate. a: M x K, per_row or per_tensor scales.
/// Errors: a.cols() != w.cols(), y not M x N, bias neither empty nor N floats, activations with
/// zero points or per_column / per_group scales, a code outside a's grid, a non-finite scale.
/// Empty shapes (M, N or K = 0) are allowed: y = bias (or unchanged with accumulate).
inline void int4_gemm(const packed_int4& a, const int4_gemm_weights& w, matrix_view<float> y,
                      const int4_gemm_options& options = {}) {
  constexpr const char* fn = "int4_gemm";
  detail::check(a.cols() == w.cols(), fn, "activations have K = ", a.cols(), ", weights K = ", w.cols());
  detail::check(y.rows() == a.rows() && y.cols() == w.rows(), fn, "output is ", y.rows(), " x ", y.cols(),
                ", the product is ", a.rows(), " x ", w.rows());
  detail::check(options.bias.empty() || options.bias.size() == w.rows(), fn, "bias has ",
                options.bias.size(), " floats, N = ", w.rows());
  detail::check(!a.has_zero_points(), fn, "activations have zero points; int4_gemm takes symmetric tensors");
  detail::check(a.gran() == granularity::per_row || a.gran() == granularity::per_tensor, fn,
                "activations need per_row or per_tensor scales (", a.rows(), " x ", a.cols(), ")");
  if (a.rows() == 0 || w.rows() == 0) return;
  if (w.groups() == 0) {  // K = 0: the product is zero
    for (std::size_t i = 0; i < y.rows(); ++i)
      for (std::size_t j = 0; j < y.cols(); ++j) {
        const float v = options.bias.empty() ? 0.0f : options.bias[j];
        y(i, j) = options.accumulate ? y(i, j) + v : v;
      }
    return;
  }
  detail::int4_gemm_activations act;
  detail::prepare_int4_activations(a, w, act);
  detail::int4_gemm_problem p;
  w.fill_problem(p);
  p.a = act.codes.data();
  p.lda = act.lda;
  p.a_corr = act.corr.data();
  p.a_scales = act.scales.data();
  p.bias = options.bias.empty() ? nullptr : options.bias.data();
  p.y = y.data();
  p.ldy = y.row_stride();
  p.m = a.rows();
  p.accumulate = options.accumulate;
  const std::size_t threads = detail::resolve_threads(options.threads);
  // Tasks are fixed by the shape only: 64 rows x 8 panels (128 outputs), or finer panels for GEMV.
  const std::size_t m_chunk = 64, panel_chunk = p.m <= 8 ? 4 : 8;
  const std::size_t m_tasks = (p.m + m_chunk - 1) / m_chunk;
  const std::size_t p_tasks = (w.panels() + panel_chunk - 1) / panel_chunk;
  auto task = [&](std::size_t t) {
    const std::size_t mt = t / p_tasks, pt = t % p_tasks;
    const std::size_t m0 = mt * m_chunk, m1 = std::min(p.m, m0 + m_chunk);
    const std::size_t q0 = pt * panel_chunk, q1 = std::min(w.panels(), q0 + panel_chunk);
    detail::dispatch([&](auto arch) { detail::int4_gemm_kernel<decltype(arch)>::run(p, m0, m1, q0, q1); });
  };
  if (threads <= 1) {
    // One thread: the whole range in one call, so the kernel's own L2 blocking spans all panels.
    detail::dispatch([&](auto arch) { detail::int4_gemm_kernel<decltype(arch)>::run(p, 0, p.m, 0, w.panels()); });
    return;
  }
  detail::thread_team team(std::min(threads, m_tasks * p_tasks));
  team.run(m_tasks * p_tasks, task);
}

/// Whether int4_gemm runs vpdpbusd on this machine and build (AVX-512 path with AVX512_VNNI).
[[nodiscard]] inline bool int4_gemm_uses_vnni() noexcept {
  return detail::dispatch([](auto arch) { return detail::int4_gemm_kernel<decltype(arch)>::uses_vnni(); });
}

SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_INT4_GEMM_HPP
