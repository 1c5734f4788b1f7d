// singlequant/givens.hpp - Givens rotations, disjoint stages of them, and ordered sequences.
//
// Convention (docs/method.md sections 1-2, row vectors): G(i, j, theta) changes two
// coordinates of x <- x G,
//     x_i <- c x_i - s x_j,    x_j <- s x_i + c x_j,    c = cos theta, s = sin theta,
// i.e. the point (x_i, x_j) turns counter-clockwise by theta; as a matrix G_ii = G_jj = c,
// G_ij = s, G_ji = -s. A sequence is the ordered product G = G_0 G_1 ... G_{k-1}: x G applies G_0
// first. A linear layer y = x W^T keeps its output under y = (x G)(W G)^T, so weights W
// (out_features x in_features) fold as W <- W G: the same row operation as on activations
// (tokens x channels). Build and fold in double, apply online in float (fold_into_weights computes
// in double for float weights).
#ifndef SINGLEQUANT_GIVENS_HPP
#define SINGLEQUANT_GIVENS_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <ranges>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "config.hpp"
#include "detail/givens_kernels.hpp"
#include "simd.hpp"
#include "view.hpp"

SINGLEQUANT_BEGIN_NAMESPACE

/// Deprecated spelling of float_or_double (config.hpp), kept for one minor release.
template <class T>
concept givens_scalar = float_or_double<T>;

namespace detail {
template <class T>
[[nodiscard]] constexpr double rotation_norm_tolerance() noexcept {
  // c and s rounded from an exact rotation miss c^2 + s^2 = 1 by a few eps; 64 eps leaves room
  // for products computed in T, and still rejects anything that is not a rotation.
  return 64.0 * static_cast<double>(std::numeric_limits<T>::epsilon());
}
}  // namespace detail

/// One Givens rotation G(i, j, theta) on the plane of channels (i, j), i != j, stored as
/// c = cos theta, s = sin theta (T = float or double). Applied to a row vector x <- x G:
///     x_i <- c x_i - s x_j,    x_j <- s x_i + c x_j    (counter-clockwise by theta).
/// Example: givens<double>::from_angle(0, 1, pi / 2) maps (1, 0) to (0, 1).
/// It is an aggregate, so {i, j, c, s} also works; stages and sequences validate what they receive
/// (i != j, finite, c^2 + s^2 = 1 within 64 eps of T).
template <class T>
struct givens {
  static_assert(float_or_double<T>, "givens<T>: T is float or double");
  std::size_t i = 0;
  std::size_t j = 1;
  T c = 1;
  T s = 0;

  /// Rotation by theta (radians) on plane (i, j): c = cos theta, s = sin theta, computed in double.
  [[nodiscard]] static givens from_angle(std::size_t i, std::size_t j, double theta) {
    detail::check(i != j, "givens::from_angle", "plane (", i, ", ", j, ") needs i != j");
    detail::check(std::isfinite(theta), "givens::from_angle", "angle ", theta, " on plane (", i,
                  ", ", j, ") is not finite");
    return {i, j, static_cast<T>(std::cos(theta)), static_cast<T>(std::sin(theta))};
  }
  /// Rotation with direction (c, s) normalised to unit length in double: (3, 4) -> (0.6, 0.8).
  /// c and s must be finite and not both zero.
  [[nodiscard]] static givens from_cos_sin(std::size_t i, std::size_t j, double c, double s) {
    detail::check(i != j, "givens::from_cos_sin", "plane (", i, ", ", j, ") needs i != j");
    detail::check(std::isfinite(c) && std::isfinite(s), "givens::from_cos_sin", "c = ", c, ", s = ", s,
                  " on plane (", i, ", ", j, ") is not finite");
    const double norm = std::hypot(c, s);
    detail::check(norm > 0, "givens::from_cos_sin", "c = s = 0 on plane (", i, ", ", j,
                  ") has no direction");
    return {i, j, static_cast<T>(c / norm), static_cast<T>(s / norm)};
  }
  /// The inverse (= transpose) G(i, j, -theta): (i, j, c, -s).
  [[nodiscard]] constexpr givens inverse() const noexcept { return {i, j, c, -s}; }
  /// theta = atan2(s, c) in (-pi, pi].
  [[nodiscard]] double angle() const noexcept {
    return std::atan2(static_cast<double>(s), static_cast<double>(c));
  }
  /// Rotates one pair in place: (x_i, x_j) <- (c x_i - s x_j, s x_i + c x_j), computed in U.
  template <class U>
  constexpr void rotate(U& x_i, U& x_j) const noexcept {
    const U a = x_i, b = x_j, cu = static_cast<U>(c), su = static_cast<U>(s);
    x_i = cu * a - su * b;
    x_j = su * a + cu * b;
  }
  friend constexpr bool operator==(const givens&, const givens&) = default;
};

namespace detail {
inline constexpr std::size_t unbounded_dim = std::numeric_limits<std::size_t>::max();

/// Checks one rotation: i != j, i and j < dim, finite, c^2 + s^2 = 1.
template <class T>
void check_rotation(const givens<T>& g, std::size_t dim, std::string_view function, std::size_t index) {
  check(g.i != g.j, function, "rotation ", index, " has plane (", g.i, ", ", g.j, "): i == j");
  check(g.i < dim && g.j < dim, function, "rotation ", index, " has plane (", g.i, ", ",
        g.j, ") outside dim ", dim);
  const double c = g.c, s = g.s;
  check(std::isfinite(c) && std::isfinite(s) &&
            std::fabs(c * c + s * s - 1.0) <= rotation_norm_tolerance<T>(),
        function, "rotation ", index, " on plane (", g.i, ", ", g.j, ") is not a rotation: c = ", c,
        ", s = ", s, ", c^2 + s^2 = ", c * c + s * s);
}

}  // namespace detail

template <class T>
class givens_sequence;

/// One parallel layer: rotations on pairwise-disjoint planes, so they commute and their order
/// inside the stage does not matter. The dimension is not stored: a stage fits any vector with
/// more than max_index() elements.
template <class T>
class givens_stage {
  static_assert(float_or_double<T>, "givens_stage<T>: T is float or double");

 public:
  using value_type = T;

  givens_stage() = default;
  /// Validates every rotation (i != j, finite, unit (c, s)) and that no channel appears twice;
  /// the error names the two rotations and their planes.
  explicit givens_stage(std::vector<givens<T>> rotations) : rotations_(std::move(rotations)) {
    std::vector<std::pair<std::size_t, std::size_t>> channels;  // (channel, rotation index)
    channels.reserve(2 * rotations_.size());
    for (std::size_t k = 0; k < rotations_.size(); ++k) {
      detail::check_rotation(rotations_[k], detail::unbounded_dim, "givens_stage", k);
      channels.emplace_back(rotations_[k].i, k);
      channels.emplace_back(rotations_[k].j, k);
    }
    std::sort(channels.begin(), channels.end());
    for (std::size_t k = 1; k < channels.size(); ++k) {
      if (channels[k].first != channels[k - 1].first) continue;
      const givens<T>& a = rotations_[channels[k - 1].second];
      const givens<T>& b = rotations_[channels[k].second];
      detail::fail("givens_stage", detail::message("rotations ", channels[k - 1].second, " on plane (", a.i,
                                                    ", ", a.j, ") and ", channels[k].second, " on plane (",
                                                    b.i, ", ", b.j, ") share channel ", channels[k].first,
                                                    "; planes of one stage must be disjoint"));
    }
    if (!channels.empty()) required_dim_ = channels.back().first + 1;
  }

  [[nodiscard]] std::span<const givens<T>> rotations() const noexcept { return rotations_; }
  [[nodiscard]] std::size_t size() const noexcept { return rotations_.size(); }
  [[nodiscard]] bool empty() const noexcept { return rotations_.empty(); }
  /// Largest channel index used (0 for an empty stage); max_index() + 1 is the minimal dimension.
  [[nodiscard]] std::size_t max_index() const noexcept { return required_dim_ == 0 ? 0 : required_dim_ - 1; }
  /// The minimal vector length the stage applies to: max_index() + 1, or 0 when empty.
  [[nodiscard]] std::size_t required_dim() const noexcept { return required_dim_; }
  /// The inverse stage: every rotation inverted (disjoint rotations commute, so no reordering).
  [[nodiscard]] givens_stage inverse() const {
    std::vector<givens<T>> inverted;
    inverted.reserve(rotations_.size());
    for (auto it = rotations_.rbegin(); it != rotations_.rend(); ++it) inverted.push_back(it->inverse());
    return givens_stage(std::move(inverted), required_dim_, unchecked{});
  }
  friend bool operator==(const givens_stage&, const givens_stage&) = default;

 private:
  struct unchecked {};
  givens_stage(std::vector<givens<T>> rotations, std::size_t required_dim, unchecked)
      : rotations_(std::move(rotations)), required_dim_(required_dim) {}
  friend class givens_sequence<T>;

  std::vector<givens<T>> rotations_;
  std::size_t required_dim_ = 0;
};

namespace detail {
template <class T>
struct is_vector_view : std::false_type {};
template <class T>
struct is_vector_view<vector_view<T>> : std::true_type {};

/// A contiguous range of float or double that is not already a vector_view.
template <class R>
concept givens_data_range =
    std::ranges::contiguous_range<R> && std::ranges::sized_range<R> &&
    float_or_double<std::ranges::range_value_t<R>> && !is_vector_view<std::remove_cvref_t<R>>::value;

/// Owns what a tile_plan_view points to (see detail/givens_kernels.hpp).
template <class U>
struct tile_plan {
  std::vector<std::size_t> blocks;
  std::size_t misalignment = 0;
  std::vector<line_rotation<U>> rotations;
  std::vector<std::size_t> fused_offsets;
  [[nodiscard]] tile_plan_view<U> view() const noexcept {
    return {blocks.data(), blocks.size(), misalignment, rotations.data(), rotations.size(), fused_offsets.data()};
  }
};

/// The tiled path's plan for these stages (at least one, non-empty) on rows of `cols` elements,
/// `row_stride` apart (tile_offsets_fit), starting at `data`: blocks aligned to 64 bytes of row 0, the blocks any
/// rotation touches, every rotation with its two line offsets (the first applied stage ordered by
/// the later of its two channel blocks, its rotations with a partial-block line after those, then
/// the other stages in the order they are applied).
template <class T, class U>
tile_plan<U> make_tile_plan(std::span<const rotation_span<T>> stages, bool inverse, std::size_t cols,
                            std::size_t row_stride, const U* data) {
  constexpr std::size_t B = givens_block_cols<U>, R = givens_tile_rows<U>;
  tile_plan<U> plan;
  plan.misalignment = (reinterpret_cast<std::uintptr_t>(data) % 64) / sizeof(U);
  const std::size_t m = plan.misalignment;
  constexpr std::size_t none = std::numeric_limits<std::size_t>::max();
  std::vector<std::size_t> position((cols + m + B - 1) / B, none);
  for (const auto& stage : stages)
    for (std::size_t q = 0; q < stage.size; ++q)
      position[(stage.data[q].i + m) / B] = position[(stage.data[q].j + m) / B] = 0;
  for (std::size_t b = 0; b < position.size(); ++b)
    if (position[b] != none) {
      position[b] = plan.blocks.size();
      plan.blocks.push_back(b);
    }
  // Channel k = h R + j of block b: row j, columns [h R, (h + 1) R) of the block, transposed in
  // place; in the partial-block buffer if the block is cut by the start or end of the rows.
  const auto line = [&](std::size_t c) -> std::int32_t {  // fits: tile_offsets_fit
    const std::size_t b = (c + m) / B, k = (c + m) % B;
    if (partial_block<U>(b, m, cols))
      return -1 - static_cast<std::int32_t>((b == 0 ? 0 : B * R) + k * R);
    return static_cast<std::int32_t>((k % R) * row_stride + (b * B - m) + (k / R) * R);
  };
  const auto rotation = [&](const givens<T>& g) {
    return line_rotation<U>{line(g.i), line(g.j), static_cast<U>(g.c),
                            inverse ? -static_cast<U>(g.s) : static_cast<U>(g.s)};
  };
  std::size_t rotation_count = 0;
  for (const auto& stage : stages) rotation_count += stage.size;
  plan.rotations.resize(rotation_count);
  // Counting sort of the first applied stage by the position of its later block; its rotations
  // with a line in the partial-block buffer go first in the tail (key block_count), so that the
  // fused ranges hold tile lines only.
  const rotation_span<T>& first = inverse ? stages.back() : stages.front();
  const std::size_t tail = plan.blocks.size();
  const auto key = [&](const givens<T>& g) {
    const std::size_t bi = (g.i + m) / B, bj = (g.j + m) / B;
    if (partial_block<U>(bi, m, cols) || partial_block<U>(bj, m, cols)) return tail;
    return std::max(position[bi], position[bj]);
  };
  std::vector<std::size_t> next(tail + 2, 0);
  for (std::size_t q = 0; q < first.size; ++q) ++next[key(first.data[q]) + 1];
  for (std::size_t b = 0; b <= tail; ++b) next[b + 1] += next[b];
  plan.fused_offsets.assign(next.begin(), next.end() - 1);
  for (std::size_t q = 0; q < first.size; ++q) plan.rotations[next[key(first.data[q])]++] = rotation(first.data[q]);
  std::size_t filled = first.size;
  for (std::size_t step = 1; step < stages.size(); ++step) {
    const rotation_span<T>& stage = stages[inverse ? stages.size() - 1 - step : step];
    for (std::size_t q = 0; q < stage.size; ++q)
      plan.rotations[filled++] = rotation(stage.data[inverse ? stage.size - 1 - q : q]);
  }
  return plan;
}

/// Whether every line offset of a tile (R rows `row_stride` apart) fits line_rotation's int32.
template <class U>
bool tile_offsets_fit(std::size_t row_stride) noexcept {
  return row_stride <= static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()) / givens_tile_rows<U>;
}

/// Applies the stages (inverse: reversed, inverted) to every row of x; validated by the caller.
template <class T, class U>
void apply_stages_to_rows(std::span<const givens_stage<T>> stages, bool inverse, matrix_view<U> x) {
  std::size_t rotation_count = 0;
  for (const auto& stage : stages) rotation_count += stage.size();
  if (x.rows() == 0 || x.cols() == 0 || rotation_count == 0) return;
  std::vector<rotation_span<T>> spans;
  spans.reserve(stages.size());
  for (const auto& stage : stages)
    if (!stage.empty()) spans.push_back({stage.rotations().data(), stage.size()});
  if (x.rows() >= givens_tile_rows<U> && tile_offsets_fit<U>(x.row_stride())) {
    const tile_plan<U> plan = make_tile_plan<T, U>(spans, inverse, x.cols(), x.row_stride(), x.data());
    // Transposing a block in and out costs about as much as rotating ~2 channel pairs row by row:
    // below that density the direct path wins (a sparse list on many tokens).
    if (rotation_count >= 2 * plan.blocks.size()) {
      dispatch([&](auto arch) {
        givens_kernel<U, decltype(arch)>::apply_rows_tiled(spans.data(), spans.size(), inverse, plan.view(),
                                                           x.data(), x.rows(), x.cols(), x.row_stride());
      });
      return;
    }
  }
  dispatch([&](auto arch) {
    givens_kernel<U, decltype(arch)>::apply_rows_direct(spans.data(), spans.size(), inverse, x.data(),
                                                        x.rows(), x.row_stride());
  });
}

/// One row vector, no allocation (the online per-token path).
template <class T, class U>
void apply_stages_to_vector(std::span<const givens_stage<T>> stages, bool inverse, U* x) noexcept {
  for (std::size_t step = 0; step < stages.size(); ++step) {
    const auto& stage = stages[inverse ? stages.size() - 1 - step : step];
    const rotation_span<T> span{stage.rotations().data(), stage.size()};
    rotate_rows_direct<T, U, simd::scalar_arch>(&span, 1, inverse, x, 1, 0);
  }
}
}  // namespace detail

/// An ordered product of Givens rotations G = G_0 G_1 ... on vectors of length dim(), grouped in
/// stages of disjoint rotations; x G (apply) runs the stages first to last. Build it in double,
/// apply it to float or double data.
///
/// Example (two rotations, applied to a token and folded into a weight matrix):
///     singlequant::givens_sequence<double> g(4);
///     g.push_back(singlequant::givens<double>::from_angle(0, 3, 0.3));
///     g.push_back(singlequant::givens<double>::from_angle(1, 2, -0.7));  // joins the first stage
///     g.apply<float>(token);                       // token <- token G   (4 floats)
///     singlequant::fold_into_weights(g, w_view);   // W <- W G           (out x 4)
template <class T>
class givens_sequence {
  static_assert(float_or_double<T>, "givens_sequence<T>: T is float or double");

 public:
  using value_type = T;

  /// The identity on vectors of length dim.
  explicit givens_sequence(std::size_t dim = 0)
      : dim_(dim),
        last_stage_of_(detail::checked_vector<std::size_t>("givens_sequence", "dimension", dim)) {}

  [[nodiscard]] std::size_t dim() const noexcept { return dim_; }
  [[nodiscard]] std::span<const givens_stage<T>> stages() const noexcept { return stages_; }
  [[nodiscard]] std::size_t stage_count() const noexcept { return stages_.size(); }
  [[nodiscard]] std::size_t rotation_count() const noexcept { return rotation_count_; }
  [[nodiscard]] bool empty() const noexcept { return rotation_count_ == 0; }

  /// Appends g (the product becomes G g). g joins the last stage when its plane is disjoint from
  /// every plane of that stage (they commute, so the product is the same), else starts a new
  /// stage. Checks i != j, i, j < dim(), finite and unit (c, s).
  void push_back(const givens<T>& g) {
    detail::check_rotation(g, dim_, "givens_sequence::push_back", rotation_count_);
    const std::size_t last = stages_.size();  // 1-based id of the last stage
    if (last == 0 || last_stage_of_[g.i] == last || last_stage_of_[g.j] == last) {
      stages_.push_back(givens_stage<T>());
    }
    givens_stage<T>& stage = stages_.back();
    stage.rotations_.push_back(g);
    stage.required_dim_ = std::max(stage.required_dim_, std::max(g.i, g.j) + 1);
    last_stage_of_[g.i] = last_stage_of_[g.j] = stages_.size();
    ++rotation_count_;
  }
  /// Appends a whole stage as its own stage (an empty stage is ignored). Checks that it fits dim().
  void push_back_stage(givens_stage<T> stage) {
    detail::check(stage.required_dim() <= dim_, "givens_sequence::push_back_stage", "stage uses channel ",
                  stage.max_index(), " but the sequence dim is ", dim_);
    if (stage.empty()) return;
    append_stage_unchecked(std::move(stage));
  }
  /// Composition: this, then other (the product becomes G_this G_other); stages are kept as they are.
  void append(const givens_sequence& other) {
    detail::check(other.dim_ == dim_, "givens_sequence::append", "dims differ: ", dim_, " vs ", other.dim_);
    if (&other == this) {
      const givens_sequence copy = other;
      append(copy);
      return;
    }
    for (const auto& stage : other.stages_) append_stage_unchecked(stage);
  }

  /// The inverse G^T: stages in reverse order, every rotation inverted.
  [[nodiscard]] givens_sequence inverse() const {
    givens_sequence out(dim_);
    for (auto it = stages_.rbegin(); it != stages_.rend(); ++it) out.append_stage_unchecked(it->inverse());
    return out;
  }
  /// The same product regrouped into as few stages as possible: each rotation, in order, goes to
  /// the stage right after the last one that uses either of its channels (rotations sharing a
  /// channel keep their order; others commute). The stage count is then the longest chain of
  /// channel-sharing rotations, which no grouping can beat. Rotations are not merged or dropped.
  [[nodiscard]] givens_sequence regrouped() const {
    std::vector<std::size_t> level(dim_, 0);  // per channel: first stage free after its last use
    std::vector<std::vector<givens<T>>> layers;
    for (const auto& stage : stages_)
      for (const auto& g : stage.rotations()) {
        const std::size_t l = std::max(level[g.i], level[g.j]);
        if (l == layers.size()) layers.emplace_back();
        layers[l].push_back(g);
        level[g.i] = level[g.j] = l + 1;
      }
    givens_sequence out(dim_);
    for (auto& layer : layers) {
      std::size_t required = 0;
      for (const auto& g : layer) required = std::max(required, std::max(g.i, g.j) + 1);
      out.append_stage_unchecked(givens_stage<T>(std::move(layer), required, typename givens_stage<T>::unchecked{}));
    }
    return out;
  }
  /// The same rotations with coefficients converted to V (e.g. build in double, store in float).
  template <class V>
  [[nodiscard]] givens_sequence<V> converted() const {
    givens_sequence<V> out(dim_);
    for (const auto& stage : stages_) {
      std::vector<givens<V>> rotations;
      rotations.reserve(stage.size());
      for (const auto& g : stage.rotations())  // renormalised in double: the tolerance is V's
        rotations.push_back(givens<V>::from_cos_sin(g.i, g.j, static_cast<double>(g.c), static_cast<double>(g.s)));
      out.push_back_stage(givens_stage<V>(std::move(rotations)));
    }
    return out;
  }

  /// x <- x G for one row vector of length dim() (U = float or double; computed in U). Never
  /// allocates. NaN/Inf in x propagate to the channels they are rotated into.
  template <class U>
    requires float_or_double<U>
  void apply(vector_view<U> x) const {
    check_length(x.size(), "givens_sequence::apply");
    detail::apply_stages_to_vector<T, U>(stages_, false, x.data());
  }
  /// x <- x G^T (undoes apply).
  template <class U>
    requires float_or_double<U>
  void apply_inverse(vector_view<U> x) const {
    check_length(x.size(), "givens_sequence::apply_inverse");
    detail::apply_stages_to_vector<T, U>(stages_, true, x.data());
  }
  /// apply / apply_inverse on a std::vector, std::array, std::span, ... of float or double.
  template <class R>
    requires detail::givens_data_range<R>
  void apply(R&& x) const {
    apply(vector_view<std::remove_reference_t<std::ranges::range_reference_t<R>>>(x));
  }
  template <class R>
    requires detail::givens_data_range<R>
  void apply_inverse(R&& x) const {
    apply_inverse(vector_view<std::remove_reference_t<std::ranges::range_reference_t<R>>>(x));
  }

  /// Every row of x <- row G: activations (tokens x channels) and weights (W <- W G, see
  /// fold_into_weights). Tiles of rows go through the SIMD kernel (vectorised across rows), which
  /// works in place (no scratch). Requires x.cols() == dim().
  template <class U>
    requires float_or_double<U>
  void apply_rows(matrix_view<U> x) const {
    check_length(x.cols(), "givens_sequence::apply_rows");
    detail::apply_stages_to_rows<T, U>(stages_, false, x);
  }
  /// Every row of x <- row G^T.
  template <class U>
    requires float_or_double<U>
  void apply_rows_inverse(matrix_view<U> x) const {
    check_length(x.cols(), "givens_sequence::apply_rows_inverse");
    detail::apply_stages_to_rows<T, U>(stages_, true, x);
  }

  /// The offline fold W <- W G of a weight matrix W (out_features x in_features, in_features ==
  /// dim()), so that (x G)(W G)^T = x W^T. Float weights are rotated in double and rounded once
  /// at the end (one rounding per element instead of one per rotation).
  template <class U>
    requires float_or_double<U>
  void fold_into_weights(matrix_view<U> w) const {
    detail::check(w.cols() == dim_, "givens_sequence::fold_into_weights",
                  "weight rows have length (in_features) ", w.cols(), " != sequence dim ", dim_);
    if constexpr (std::is_same_v<U, double>) {
      detail::apply_stages_to_rows<T, double>(stages_, false, w);
    } else {
      constexpr std::size_t block_rows = 64;
      std::vector<double> block(std::min(block_rows, w.rows()) * w.cols());
      for (std::size_t r0 = 0; r0 < w.rows(); r0 += block_rows) {
        const std::size_t rows = std::min(block_rows, w.rows() - r0);
        for (std::size_t r = 0; r < rows; ++r)
          for (std::size_t c = 0; c < w.cols(); ++c) block[r * w.cols() + c] = w(r0 + r, c);
        detail::apply_stages_to_rows<T, double>(stages_, false,
                                                matrix_view<double>(block.data(), rows, w.cols()));
        for (std::size_t r = 0; r < rows; ++r)
          for (std::size_t c = 0; c < w.cols(); ++c) w(r0 + r, c) = static_cast<U>(block[r * w.cols() + c]);
      }
    }
  }

  /// The dim() x dim() row-major matrix G (double) with apply(x) == x * G up to rounding:
  /// row r is e_r G.
  [[nodiscard]] std::vector<double> to_dense() const {
    std::size_t elements = 0;
    detail::check(!detail::multiply_overflows(dim_, dim_, elements), "givens_sequence::to_dense", "dim ",
                  dim_, " squared overflows");
    std::vector<double> g(elements, 0.0);
    for (std::size_t r = 0; r < dim_; ++r) g[r * dim_ + r] = 1.0;
    detail::apply_stages_to_rows<T, double>(stages_, false, matrix_view<double>(g.data(), dim_, dim_));
    return g;
  }

  friend bool operator==(const givens_sequence& a, const givens_sequence& b) {
    return a.dim_ == b.dim_ && a.stages_ == b.stages_;
  }

 private:
  void check_length(std::size_t length, std::string_view function) const {
    detail::check(length == dim_, function, "length ", length, " != sequence dim ", dim_);
  }
  void append_stage_unchecked(givens_stage<T> stage) {
    rotation_count_ += stage.size();
    stages_.push_back(std::move(stage));
    for (const auto& g : stages_.back().rotations()) last_stage_of_[g.i] = last_stage_of_[g.j] = stages_.size();
  }

  std::size_t dim_ = 0;
  std::vector<givens_stage<T>> stages_;
  std::size_t rotation_count_ = 0;
  std::vector<std::size_t> last_stage_of_;  // per channel: 1-based id of the last stage using it
};

/// x <- x S for one stage (x.size() > stage.max_index()); never allocates.
template <class T, class U>
  requires float_or_double<U>
void apply_stage(const givens_stage<T>& stage, vector_view<U> x) {
  detail::check(stage.required_dim() <= x.size(), "apply_stage", "stage uses channel ", stage.max_index(),
                " but the vector has length ", x.size());
  detail::apply_stages_to_vector<T, U>(std::span<const givens_stage<T>>(&stage, 1), false, x.data());
}
/// x <- x S^T for one stage.
template <class T, class U>
  requires float_or_double<U>
void apply_stage_inverse(const givens_stage<T>& stage, vector_view<U> x) {
  detail::check(stage.required_dim() <= x.size(), "apply_stage_inverse", "stage uses channel ",
                stage.max_index(), " but the vector has length ", x.size());
  detail::apply_stages_to_vector<T, U>(std::span<const givens_stage<T>>(&stage, 1), true, x.data());
}
/// Every row of x <- row S (SIMD across rows, as givens_sequence::apply_rows).
template <class T, class U>
  requires float_or_double<U>
void apply_stage_rows(const givens_stage<T>& stage, matrix_view<U> x) {
  detail::check(stage.required_dim() <= x.cols(), "apply_stage_rows", "stage uses channel ",
                stage.max_index(), " but rows have length ", x.cols());
  detail::apply_stages_to_rows<T, U>(std::span<const givens_stage<T>>(&stage, 1), false, x);
}
/// Every row of x <- row S^T.
template <class T, class U>
  requires float_or_double<U>
void apply_stage_rows_inverse(const givens_stage<T>& stage, matrix_view<U> x) {
  detail::check(stage.required_dim() <= x.cols(), "apply_stage_rows_inverse", "stage uses channel ",
                stage.max_index(), " but rows have length ", x.cols());
  detail::apply_stages_to_rows<T, U>(std::span<const givens_stage<T>>(&stage, 1), true, x);
}

/// The old free form of givens_sequence::fold_into_weights (one spelling per operation:
/// CONTRIBUTING.md), kept for one minor release.
template <class T, class U>
  requires float_or_double<U>
SINGLEQUANT_DEPRECATED("use g.fold_into_weights(w)")
void fold_into_weights(const givens_sequence<T>& g, matrix_view<U> w) {
  g.fold_into_weights(w);
}

/// What a builder did, measured on the calibration row sample (before / after its rotations).
/// l4 = (sum_t sum_k y_tk^4)^(1/4) over the sample rows as weighted (token_weighting), plus the
/// weighted weight rows with an active weight term (the joint objective, weight_term_options);
/// max_over_rms = mean over the token rows of max_k |y_tk| / sqrt(mean_k y_tk^2) (rows that are all
/// zero count as 1).
struct rotation_report {
  std::size_t outliers = 0;   ///< channels flagged at the first level (ART) or outlier chains (URT)
  std::size_t rotations = 0;  ///< Givens rotations built
  std::size_t stages = 0;     ///< levels (ART) or disjoint stages of the regrouped sequence (URT)
  double l4_before = 0, l4_after = 0;
  double max_over_rms_before = 0, max_over_rms_after = 0;
};

SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_GIVENS_HPP
