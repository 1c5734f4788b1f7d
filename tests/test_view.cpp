#include <singlequant/view.hpp>

#include <array>
#include <span>
#include <vector>

#include "test_support.hpp"

using singlequant::matrix_view;
using singlequant::vector_view;

TEST_CASE("vector_view from pointer, span, vector and array") {
  std::vector<float> v{1, 2, 3};
  std::array<float, 4> a{1, 2, 3, 4};
  const std::vector<float> cv{5, 6};
  vector_view<float> from_vector(v);
  vector_view<float> from_array(a);
  vector_view<float> from_span{std::span<float>(v)};
  vector_view<const float> from_const(cv);
  vector_view<const float> widened = from_vector;  // T -> const T
  vector_view<float> from_pointer(v.data(), 2);
  CHECK(from_vector.size() == 3);
  CHECK(from_array.size() == 4);
  CHECK(from_span.data() == v.data());
  CHECK(from_const[1] == 6);
  CHECK(widened.size() == 3);
  CHECK(from_pointer.size() == 2);
  from_vector[0] = 9;
  CHECK(v[0] == 9);
  vector_view deduced(v);
  static_assert(std::is_same_v<decltype(deduced), vector_view<float>>);
  vector_view deduced_const(cv);
  static_assert(std::is_same_v<decltype(deduced_const), vector_view<const float>>);
}

TEST_CASE("vector_view is const-correct") {
  static_assert(!std::is_constructible_v<vector_view<float>, const std::vector<float>&>);
  static_assert(!std::is_constructible_v<vector_view<float>, vector_view<const float>>);
  static_assert(!std::is_constructible_v<vector_view<double>, std::vector<float>&>);
  // A temporary vector would dangle: rejected at compile time.
  static_assert(!std::is_constructible_v<vector_view<const float>, std::vector<float>&&>);
  static_assert(std::is_trivially_copyable_v<vector_view<float>>);
}

TEST_CASE("vector_view checks its arguments") {
  SQ_CHECK_ERROR_CONTAINS(vector_view<float>(nullptr, 3), "vector_view", "3");
  CHECK_NOTHROW(vector_view<float>(nullptr, 0));
  std::vector<float> v(10);
  vector_view<float> view(v);
  CHECK(view.subview(2, 8).size() == 8);
  SQ_CHECK_ERROR_CONTAINS(view.subview(4, 7), "subview", "10");
}

TEST_CASE("matrix_view addresses row-major elements with a row stride") {
  std::vector<int> storage(3 * 5);
  for (std::size_t i = 0; i < storage.size(); ++i) storage[i] = static_cast<int>(i);
  matrix_view<int> m(storage, 3, 4, 5);
  CHECK(m.rows() == 3);
  CHECK(m.cols() == 4);
  CHECK(m(2, 3) == 13);
  CHECK(m.row(1)[0] == 5);
  CHECK_FALSE(m.is_contiguous());
  CHECK(m.mapping().required_span_size() == 14);
  CHECK(m.mapping()(1, 2) == 7);
  auto block = m.submatrix(1, 1, 2, 2);
  CHECK(block(0, 0) == 6);
  CHECK(block(1, 1) == 12);
  CHECK(block.row_stride() == 5);
  matrix_view<const int> read_only = m;
  CHECK(read_only(0, 1) == 1);
  matrix_view<int> dense(storage, 5, 3);
  CHECK(dense.is_contiguous());
  CHECK(m.row_block(1, 2).rows() == 2);
}

TEST_CASE("matrix_view checks extents, stride and storage size") {
  std::vector<float> storage(12);
  SQ_CHECK_ERROR_CONTAINS(matrix_view<float>(storage, 4, 4), "matrix_view", "16", "12");
  SQ_CHECK_ERROR_CONTAINS(matrix_view<float>(storage.data(), 2, 6, 5), "stride 5", "cols 6");
  SQ_CHECK_ERROR_CONTAINS(matrix_view<float>(nullptr, 2, 2), "null");
  SQ_CHECK_ERROR_CONTAINS(matrix_view<float>(storage.data(), ~std::size_t{0}, 1, ~std::size_t{0}),
                          "overflow");
  matrix_view<float> m(storage, 3, 4);
  SQ_CHECK_ERROR_CONTAINS(m.submatrix(2, 2, 2, 2), "submatrix", "3 x 4");
  CHECK_NOTHROW(matrix_view<float>(nullptr, 0, 5));
}

TEST_CASE("as_row_matrix views a vector as one row") {
  std::vector<double> v{1, 2, 3};
  auto m = singlequant::as_row_matrix(vector_view<double>(v));
  CHECK(m.rows() == 1);
  CHECK(m.cols() == 3);
  CHECK(m(0, 2) == 3);
}

TEST_CASE("issue 14 - matrix_view: an extent whose span wraps around is an error") {
  std::vector<float> four(4, 0.0f);
  constexpr std::size_t half = std::size_t{1} << 63;
  // Before: (2 - 1) 2^63 + 2^63 wrapped to 0 elements and the view over 4 floats was accepted.
  SQ_CHECK_ERROR_CONTAINS(singlequant::matrix_view<float>(four, 2, half, half), "matrix_view", "extent overflow");
  SQ_CHECK_ERROR_CONTAINS(singlequant::matrix_view<float>(four.data(), 2, half, half), "matrix_view", "extent overflow");
  // A span that fits size_t but not the address space in bytes.
  SQ_CHECK_ERROR_CONTAINS(singlequant::matrix_view<float>(four.data(), 1, half / 2), "matrix_view", "extent overflow");
  CHECK(singlequant::matrix_view<float>(four, 2, 2).rows() == 2);
}
