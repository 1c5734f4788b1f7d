// singlequant/view.hpp - non-owning views over contiguous storage.
//
// vector_view<T>: pointer + length. matrix_view<T>: pointer + rows + cols + row stride (elements),
// row-major (layout_right with a padded row). T may be const-qualified for read-only views.
// Both are cheap to copy and are built from raw pointers, std::span, std::vector, std::array or any
// other contiguous range; extents are checked at construction.
#ifndef SINGLEQUANT_VIEW_HPP
#define SINGLEQUANT_VIEW_HPP

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <ranges>
#include <span>
#include <type_traits>
#include <vector>

#include "config.hpp"

SINGLEQUANT_BEGIN_NAMESPACE

namespace detail {
// A range R can back a view of T when it is contiguous, sized, and its element pointer converts to
// T* without slicing (same element type up to added const).
template <class R, class T>
concept viewable_range_of =
    std::ranges::contiguous_range<R> && std::ranges::sized_range<R> &&
    std::is_convertible_v<std::remove_reference_t<std::ranges::range_reference_t<R>> (*)[], T (*)[]> &&
    (std::is_lvalue_reference_v<R> || std::ranges::borrowed_range<R>);
}  // namespace detail

/// The index mapping of a row-major matrix with padded rows: offset(i, j) = i * row_stride + j.
/// It mirrors std::layout_right::mapping (C++23) with an explicit stride.
struct layout_right_mapping {
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::size_t row_stride = 0;  // >= cols

  [[nodiscard]] constexpr std::size_t operator()(std::size_t i, std::size_t j) const noexcept {
    return i * row_stride + j;
  }
  /// Elements from the first to one past the last addressed element.
  [[nodiscard]] constexpr std::size_t required_span_size() const noexcept {
    return rows == 0 || cols == 0 ? 0 : (rows - 1) * row_stride + cols;
  }
  [[nodiscard]] constexpr bool is_exhaustive() const noexcept { return row_stride == cols || rows <= 1; }
  [[nodiscard]] static constexpr bool is_unique() noexcept { return true; }
  [[nodiscard]] static constexpr bool is_strided() noexcept { return true; }
  [[nodiscard]] constexpr std::size_t stride(std::size_t rank_index) const noexcept {
    return rank_index == 0 ? row_stride : 1;
  }
};

/// A non-owning view of `size()` contiguous elements of type T (T may be const).
template <class T>
class vector_view {
 public:
  using element_type = T;
  using value_type = std::remove_cv_t<T>;
  using size_type = std::size_t;
  using pointer = T*;
  using reference = T&;
  using iterator = T*;

  constexpr vector_view() noexcept = default;

  /// View of n elements at data. data may be null only when n == 0.
  constexpr vector_view(T* data, std::size_t n) : data_(data), size_(n) {
    detail::check(data != nullptr || n == 0, "vector_view", "null pointer with size ", n);
  }

  /// View over any contiguous sized range (std::vector, std::array, std::span, ...).
  template <class R>
    requires detail::viewable_range_of<R, T> && (!std::is_same_v<std::remove_cvref_t<R>, vector_view>)
  constexpr vector_view(R&& range)  // NOLINT(google-explicit-constructor): views convert implicitly
      : data_(std::ranges::data(range)), size_(std::ranges::size(range)) {}

  /// vector_view<T> converts to vector_view<const T>.
  template <class U>
    requires(!std::is_same_v<U, T> && std::is_convertible_v<U (*)[], T (*)[]>)
  constexpr vector_view(vector_view<U> other) noexcept  // NOLINT(google-explicit-constructor)
      : data_(other.data()), size_(other.size()) {}

  [[nodiscard]] constexpr T* data() const noexcept { return data_; }
  [[nodiscard]] constexpr std::size_t size() const noexcept { return size_; }
  [[nodiscard]] constexpr bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] constexpr T* begin() const noexcept { return data_; }
  [[nodiscard]] constexpr T* end() const noexcept { return data_ + size_; }
  /// Unchecked element access (SINGLEQUANT_ASSERT in debug builds).
  [[nodiscard]] constexpr T& operator[](std::size_t i) const noexcept {
    SINGLEQUANT_ASSERT(i < size_, "vector_view index out of range");
    return data_[i];
  }
  /// Checked sub-view [offset, offset + count).
  [[nodiscard]] constexpr vector_view subview(std::size_t offset, std::size_t count) const {
    detail::check(offset <= size_ && count <= size_ - offset, "vector_view::subview", "range [",
                  offset, ", ", offset, " + ", count, ") exceeds size ", size_);
    return vector_view(data_ + offset, count);
  }
  [[nodiscard]] constexpr std::span<T> as_span() const noexcept { return {data_, size_}; }

 private:
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

template <class R>
vector_view(R&&) -> vector_view<std::remove_reference_t<std::ranges::range_reference_t<R>>>;

/// A non-owning row-major view of rows x cols elements with a row stride >= cols (T may be const).
/// Activations are tokens x channels; weights are out_features x in_features (y = x W^T).
template <class T>
class matrix_view {
 public:
  using element_type = T;
  using value_type = std::remove_cv_t<T>;
  using size_type = std::size_t;
  using mapping_type = layout_right_mapping;

  constexpr matrix_view() noexcept = default;

  /// View of rows x cols elements at data with rows row_stride elements apart (default: cols).
  constexpr matrix_view(T* data, std::size_t rows, std::size_t cols)
      : matrix_view(data, rows, cols, cols) {}
  constexpr matrix_view(T* data, std::size_t rows, std::size_t cols, std::size_t row_stride)
      : data_(data), map_{rows, cols, row_stride} {
    detail::check(row_stride >= cols, "matrix_view", "row stride ", row_stride, " < cols ", cols,
                  " (rows ", rows, ")");
    // The addressed span, (rows - 1) row_stride + cols elements, must be addressable: no wrap in
    // the element count nor in its size in bytes (pointer arithmetic is in ptrdiff_t).
    std::size_t span_size = 0;
    const bool overflow = rows != 0 &&
                          (detail::multiply_overflows(rows - 1, row_stride, span_size) ||
                           detail::add_overflows(span_size, cols, span_size) ||
                           span_size > static_cast<std::size_t>(PTRDIFF_MAX) / sizeof(T));
    detail::check(!overflow, "matrix_view", "extent overflow: ", rows, " x ", cols,
                  " elements with row stride ", row_stride);
    detail::check(data != nullptr || rows == 0 || cols == 0, "matrix_view", "null pointer with ",
                  rows, " x ", cols, " elements");
  }

  /// View rows x cols (row stride default cols) over a contiguous range; checks the range is large
  /// enough for every addressed element.
  template <class R>
    requires detail::viewable_range_of<R, T>
  constexpr matrix_view(R&& range, std::size_t rows, std::size_t cols)
      : matrix_view(std::forward<R>(range), rows, cols, cols) {}
  template <class R>
    requires detail::viewable_range_of<R, T>
  constexpr matrix_view(R&& range, std::size_t rows, std::size_t cols, std::size_t row_stride)
      : matrix_view(std::ranges::data(range), rows, cols, row_stride) {
    const std::size_t available = std::ranges::size(range);
    detail::check(map_.required_span_size() <= available, "matrix_view", "a ", rows, " x ", cols,
                  " view with row stride ", row_stride, " needs ", map_.required_span_size(),
                  " elements but the range has ", available);
  }

  /// matrix_view<T> converts to matrix_view<const T>.
  template <class U>
    requires(!std::is_same_v<U, T> && std::is_convertible_v<U (*)[], T (*)[]>)
  constexpr matrix_view(matrix_view<U> other) noexcept  // NOLINT(google-explicit-constructor)
      : data_(other.data()), map_(other.mapping()) {}

  [[nodiscard]] constexpr T* data() const noexcept { return data_; }
  [[nodiscard]] constexpr std::size_t rows() const noexcept { return map_.rows; }
  [[nodiscard]] constexpr std::size_t cols() const noexcept { return map_.cols; }
  [[nodiscard]] constexpr std::size_t row_stride() const noexcept { return map_.row_stride; }
  [[nodiscard]] constexpr std::size_t size() const noexcept { return map_.rows * map_.cols; }
  [[nodiscard]] constexpr bool empty() const noexcept { return size() == 0; }
  [[nodiscard]] constexpr bool is_contiguous() const noexcept { return map_.is_exhaustive(); }
  [[nodiscard]] constexpr const mapping_type& mapping() const noexcept { return map_; }

  /// Unchecked element access (SINGLEQUANT_ASSERT in debug builds).
  [[nodiscard]] constexpr T& operator()(std::size_t i, std::size_t j) const noexcept {
    SINGLEQUANT_ASSERT(i < rows() && j < cols(), "matrix_view index out of range");
    return data_[map_(i, j)];
  }
  /// Row i as a vector view (unchecked in release builds).
  [[nodiscard]] constexpr vector_view<T> row(std::size_t i) const noexcept {
    SINGLEQUANT_ASSERT(i < rows(), "matrix_view row out of range");
    return vector_view<T>(data_ + map_(i, 0), map_.cols);
  }
  /// Checked sub-matrix of nr x nc elements starting at (r0, c0), keeping the row stride.
  [[nodiscard]] constexpr matrix_view submatrix(std::size_t r0, std::size_t c0, std::size_t nr,
                                                std::size_t nc) const {
    detail::check(r0 <= rows() && nr <= rows() - r0 && c0 <= cols() && nc <= cols() - c0,
                  "matrix_view::submatrix", "block at (", r0, ", ", c0, ") of ", nr, " x ", nc,
                  " exceeds the ", rows(), " x ", cols(), " matrix");
    return matrix_view(nr == 0 || nc == 0 ? data_ : data_ + map_(r0, c0), nr, nc, map_.row_stride);
  }
  /// Checked block of whole rows [r0, r0 + nr).
  [[nodiscard]] constexpr matrix_view row_block(std::size_t r0, std::size_t nr) const {
    return submatrix(r0, 0, nr, cols());
  }

 private:
  T* data_ = nullptr;
  layout_right_mapping map_{};
};

template <class R>
matrix_view(R&&, std::size_t, std::size_t)
    -> matrix_view<std::remove_reference_t<std::ranges::range_reference_t<R>>>;
template <class R>
matrix_view(R&&, std::size_t, std::size_t, std::size_t)
    -> matrix_view<std::remove_reference_t<std::ranges::range_reference_t<R>>>;

/// A row vector of n elements seen as a 1 x n matrix.
template <class T>
[[nodiscard]] constexpr matrix_view<T> as_row_matrix(vector_view<T> v) {
  return matrix_view<T>(v.data(), 1, v.size());
}

namespace detail {
/// Fails as `function` unless every element of x is finite, naming `what` ("weights", "down of layer
/// 1", ...), the value, its row and column: the one non-finite-input message of the library.
template <class T>
void check_finite(matrix_view<const T> x, std::string_view function, std::string_view what) {
  for (std::size_t r = 0; r < x.rows(); ++r)
    for (std::size_t k = 0; k < x.cols(); ++k)
      if (!std::isfinite(static_cast<double>(x(r, k)))) [[unlikely]]
        fail(function, message(what, ": non-finite value ", static_cast<double>(x(r, k)), " at row ", r,
                               ", column ", k));
}

/// Copies rows of a float/double view to contiguous doubles; false (nothing usable) on a non-finite
/// element, reporting its position.
template <class T>
bool copy_finite_rows(matrix_view<const T> x, std::size_t r0, std::size_t count, double* out,
                      std::size_t& bad_row, std::size_t& bad_col) noexcept {
  const std::size_t n = x.cols();
  for (std::size_t t = 0; t < count; ++t) {
    const T* src = x.row(r0 + t).data();
    double* dst = out + t * n;
    for (std::size_t k = 0; k < n; ++k) {
      const double v = static_cast<double>(src[k]);
      if (!std::isfinite(v)) {
        bad_row = r0 + t;
        bad_col = k;
        return false;
      }
      dst[k] = v;
    }
  }
  return true;
}

/// copy_finite_rows of all of x into a new vector, or an error of `function` naming the first
/// non-finite element of `what` ("weights", ...) by row and column.
template <class T>
std::vector<double> finite_copy(matrix_view<const T> x, std::string_view function, std::string_view what) {
  std::vector<double> out = checked_vector<double>(function, what, x.size());
  std::size_t bad_row = 0, bad_col = 0;
  if (!copy_finite_rows(x, 0, x.rows(), out.data(), bad_row, bad_col)) check_finite(x, function, what);
  return out;
}

/// True when the element ranges addressed by two views share memory (used for aliasing checks).
template <class T, class U>
[[nodiscard]] bool overlaps(const T* a, std::size_t a_count, const U* b, std::size_t b_count) noexcept {
  if (a_count == 0 || b_count == 0) return false;
  const auto a_begin = reinterpret_cast<std::uintptr_t>(a);
  const auto b_begin = reinterpret_cast<std::uintptr_t>(b);
  const auto a_end = a_begin + a_count * sizeof(T);
  const auto b_end = b_begin + b_count * sizeof(U);
  return a_begin < b_end && b_begin < a_end;
}
}  // namespace detail

SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_VIEW_HPP
