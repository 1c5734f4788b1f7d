// Givens rotations, stages and sequences against independent references: dense products of the
// docs/method.md section 2 matrices, a long-double row-by-row reference, orthogonality, and bad input.
#include <singlequant/givens.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <random>
#include <vector>

#include "test_support.hpp"

namespace sq = singlequant;

namespace {

/// A random rotation on a random plane of [0, dim) (dim >= 2).
template <class T>
sq::givens<T> random_rotation(std::mt19937_64& rng, std::size_t dim) {
  std::uniform_int_distribution<std::size_t> channel(0, dim - 1);
  std::uniform_real_distribution<double> angle(-std::numbers::pi, std::numbers::pi);
  const std::size_t i = channel(rng);
  std::size_t j = channel(rng);
  while (j == i) j = channel(rng);
  return sq::givens<T>::from_angle(i, j, angle(rng));
}

template <class T>
sq::givens_sequence<T> random_sequence(std::size_t dim, std::size_t count, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  sq::givens_sequence<T> g(dim);
  for (std::size_t k = 0; k < count; ++k) g.push_back(random_rotation<T>(rng, dim));
  return g;
}

/// G(i, j, theta) as a dense matrix, straight from docs/method.md section 2: identity except
/// G_ii = G_jj = c, G_ij = s, G_ji = -s.
template <class T>
std::vector<double> dense_rotation(const sq::givens<T>& g, std::size_t dim) {
  std::vector<double> m(dim * dim, 0.0);
  for (std::size_t r = 0; r < dim; ++r) m[r * dim + r] = 1.0;
  m[g.i * dim + g.i] = g.c;
  m[g.j * dim + g.j] = g.c;
  m[g.i * dim + g.j] = g.s;
  m[g.j * dim + g.i] = -static_cast<double>(g.s);
  return m;
}

std::vector<double> multiply(const std::vector<double>& a, const std::vector<double>& b, std::size_t n) {
  std::vector<double> out(n * n, 0.0);
  for (std::size_t r = 0; r < n; ++r)
    for (std::size_t k = 0; k < n; ++k)
      for (std::size_t c = 0; c < n; ++c) out[r * n + c] += a[r * n + k] * b[k * n + c];
  return out;
}

/// The product G_0 G_1 ... of the sequence's rotations as dense matrices (independent of the
/// library's application code).
template <class T>
std::vector<double> dense_product(const sq::givens_sequence<T>& g) {
  const std::size_t n = g.dim();
  std::vector<double> product(n * n, 0.0);
  for (std::size_t r = 0; r < n; ++r) product[r * n + r] = 1.0;
  for (const auto& stage : g.stages())
    for (const auto& rotation : stage.rotations()) product = multiply(product, dense_rotation(rotation, n), n);
  return product;
}

/// Row-vector reference x G in long double, rotation by rotation.
template <class T, class U>
std::vector<long double> reference_apply(const sq::givens_sequence<T>& g, const std::vector<U>& x) {
  std::vector<long double> y(x.begin(), x.end());
  for (const auto& stage : g.stages())
    for (const auto& r : stage.rotations()) {
      const long double a = y[r.i], b = y[r.j], c = r.c, s = r.s;
      y[r.i] = c * a - s * b;
      y[r.j] = s * a + c * b;
    }
  return y;
}

template <class U>
double eps() {
  return static_cast<double>(std::numeric_limits<U>::epsilon());
}

}  // namespace

TEST_CASE("givens: the row-vector convention of docs/method.md section 1") {
  const auto g = sq::givens<double>::from_angle(0, 1, std::numbers::pi / 2);
  double x0 = 1, x1 = 0;
  g.rotate(x0, x1);  // counter-clockwise by 90 degrees: (1, 0) -> (0, 1)
  CHECK(std::fabs(x0) < 1e-15);
  CHECK(x1 == doctest::Approx(1.0));

  const auto h = sq::givens<double>::from_angle(3, 1, 0.4);
  sq::givens_sequence<double> seq(5);
  seq.push_back(h);
  std::vector<double> x = {0.5, -1.25, 2.0, 3.5, 7.0};
  const std::vector<double> before = x;
  seq.apply(x);
  const double c = std::cos(0.4), s = std::sin(0.4);
  CHECK(x[3] == doctest::Approx(c * before[3] - s * before[1]));  // x_i <- c x_i - s x_j
  CHECK(x[1] == doctest::Approx(s * before[3] + c * before[1]));  // x_j <- s x_i + c x_j
  CHECK(x[0] == before[0]);
  CHECK(x[2] == before[2]);
  CHECK(x[4] == before[4]);

  // to_dense: G_ii = G_jj = c, G_ij = s, G_ji = -s (docs/method.md section 2), and apply(x) == x G.
  const auto dense = seq.to_dense();
  const auto expected = dense_rotation(h, 5);
  for (std::size_t k = 0; k < 25; ++k) CHECK(dense[k] == doctest::Approx(expected[k]).epsilon(1e-15));
}

TEST_CASE("givens: constructors, inverse, angle and their errors") {
  const auto g = sq::givens<float>::from_cos_sin(2, 5, 3.0, 4.0);
  CHECK(g.i == 2);
  CHECK(g.j == 5);
  CHECK(g.c == doctest::Approx(0.6f));
  CHECK(g.s == doctest::Approx(0.8f));
  CHECK(g.inverse() == sq::givens<float>{2, 5, g.c, -g.s});
  CHECK(g.angle() == doctest::Approx(std::atan2(0.8, 0.6)).epsilon(1e-7));
  CHECK(sq::givens<double>::from_angle(0, 1, -2.5).angle() == doctest::Approx(-2.5).epsilon(1e-15));
  const sq::givens<double> identity{};
  CHECK(identity.c == 1.0);
  CHECK(identity.s == 0.0);
  CHECK(identity.i != identity.j);

  SQ_CHECK_ERROR_CONTAINS(sq::givens<double>::from_angle(3, 3, 0.1), "givens::from_angle", "(3, 3)");
  SQ_CHECK_ERROR_CONTAINS(sq::givens<double>::from_angle(0, 1, NAN), "givens::from_angle", "not finite");
  SQ_CHECK_ERROR_CONTAINS(sq::givens<double>::from_cos_sin(0, 1, 0.0, 0.0), "givens::from_cos_sin",
                          "no direction");
  SQ_CHECK_ERROR_CONTAINS(sq::givens<float>::from_cos_sin(0, 1, INFINITY, 1.0), "givens::from_cos_sin",
                          "not finite");
  SQ_CHECK_ERROR_CONTAINS(sq::givens<float>::from_cos_sin(4, 4, 1.0, 1.0), "givens::from_cos_sin", "(4, 4)");
}

TEST_CASE("givens_stage: validates planes and disjointness, naming them") {
  using G = sq::givens<double>;
  const sq::givens_stage<double> stage({G::from_angle(0, 7, 0.1), G::from_angle(2, 3, 0.2)});
  CHECK(stage.size() == 2);
  CHECK(stage.max_index() == 7);
  CHECK(stage.required_dim() == 8);
  CHECK(sq::givens_stage<double>().empty());
  CHECK(sq::givens_stage<double>().required_dim() == 0);

  SQ_CHECK_ERROR_CONTAINS(sq::givens_stage<double>({G::from_angle(0, 5, 0.1), G::from_angle(2, 3, 0.2),
                                                    G::from_angle(5, 7, 0.3)}),
                          "givens_stage", "(0, 5)", "(5, 7)", "share channel 5");
  SQ_CHECK_ERROR_CONTAINS(sq::givens_stage<double>({G::from_angle(1, 2, 0.1), G::from_angle(2, 1, 0.2)}),
                          "givens_stage", "(1, 2)", "(2, 1)");
  SQ_CHECK_ERROR_CONTAINS(sq::givens_stage<double>({G{4, 4, 1.0, 0.0}}), "givens_stage", "(4, 4)", "i == j");
  SQ_CHECK_ERROR_CONTAINS(sq::givens_stage<double>({G{0, 1, 1.0, 0.5}}), "givens_stage", "not a rotation");
  SQ_CHECK_ERROR_CONTAINS(sq::givens_stage<float>({sq::givens<float>{0, 1, NAN, 0.f}}), "givens_stage",
                          "not a rotation");
}

TEST_CASE("givens_sequence: push_back joins the last stage only when disjoint from it") {
  using G = sq::givens<double>;
  sq::givens_sequence<double> seq(6);
  seq.push_back(G::from_angle(0, 1, 0.1));
  seq.push_back(G::from_angle(2, 3, 0.2));  // disjoint: same stage
  seq.push_back(G::from_angle(1, 2, 0.3));  // shares 1 and 2: new stage
  seq.push_back(G::from_angle(4, 5, 0.4));  // disjoint from (1, 2): joins it
  seq.push_back(G::from_angle(0, 3, 0.5));  // disjoint from (1, 2), (4, 5): joins it
  REQUIRE(seq.stage_count() == 2);
  CHECK(seq.stages()[0].size() == 2);
  CHECK(seq.stages()[1].size() == 3);
  CHECK(seq.rotation_count() == 5);
  // The grouping did not change the product: it equals the rotations multiplied in push order.
  std::vector<double> product(36, 0.0);
  for (std::size_t r = 0; r < 6; ++r) product[r * 6 + r] = 1.0;
  for (const auto& g : {G::from_angle(0, 1, 0.1), G::from_angle(2, 3, 0.2), G::from_angle(1, 2, 0.3),
                        G::from_angle(4, 5, 0.4), G::from_angle(0, 3, 0.5)})
    product = multiply(product, dense_rotation(g, 6), 6);
  const auto dense = seq.to_dense();
  for (std::size_t k = 0; k < 36; ++k) CHECK(dense[k] == doctest::Approx(product[k]).epsilon(1e-14));

  SQ_CHECK_ERROR_CONTAINS(seq.push_back(G::from_angle(2, 6, 0.1)), "givens_sequence::push_back", "(2, 6)",
                          "dim 6");
  SQ_CHECK_ERROR_CONTAINS(seq.push_back(G{1, 1, 1.0, 0.0}), "givens_sequence::push_back", "i == j");
  SQ_CHECK_ERROR_CONTAINS(seq.push_back(G{1, 2, 2.0, 0.0}), "givens_sequence::push_back", "not a rotation");
  SQ_CHECK_ERROR_CONTAINS(seq.push_back_stage(sq::givens_stage<double>({G::from_angle(0, 9, 0.1)})),
                          "givens_sequence::push_back_stage", "channel 9", "dim is 6");
  SQ_CHECK_ERROR_CONTAINS(seq.append(sq::givens_sequence<double>(7)), "givens_sequence::append", "6 vs 7");
  CHECK(seq.rotation_count() == 5);  // nothing was added by the failed calls
  sq::givens_sequence<double> empty_dim;
  SQ_CHECK_ERROR_CONTAINS(empty_dim.push_back(G::from_angle(0, 1, 0.1)), "givens_sequence::push_back",
                          "dim 0");
}

TEST_CASE_TEMPLATE("givens_sequence: apply equals the product of the dense rotation matrices", T, float,
                   double) {
  const std::size_t dim = 37;
  const auto seq = random_sequence<T>(dim, 90, 11);
  const auto product = dense_product(seq);
  const auto dense = seq.to_dense();
  for (std::size_t k = 0; k < dim * dim; ++k) REQUIRE(std::fabs(dense[k] - product[k]) <= 1e-13);

  auto check_against_product = [&](const auto& x_in, const auto& y, double tolerance) {
    for (std::size_t c = 0; c < dim; ++c) {
      double expected = 0;
      for (std::size_t k = 0; k < dim; ++k) expected += static_cast<double>(x_in[k]) * product[k * dim + c];
      CHECK(std::fabs(static_cast<double>(y[c]) - expected) <= tolerance);
    }
  };
  // One row vector, float and double data.
  const auto xf = sq_test::random_normal<float>(dim, 5);
  auto yf = xf;
  seq.apply(yf);
  check_against_product(xf, yf, 200 * eps<float>());
  const auto xd = sq_test::random_normal<double>(dim, 6);
  auto yd = xd;
  seq.apply(yd);
  check_against_product(xd, yd, 1e-12);  // same coefficients as the product, double data

  // Every row of a padded matrix, across the tile boundary (16 float rows / 8 double rows).
  for (std::size_t rows : {1u, 7u, 8u, 15u, 16u, 17u, 40u}) {
    const std::size_t stride = dim + 3;
    auto data = sq_test::random_normal<float>(rows * stride, 100 + rows);
    const auto original = data;
    seq.apply_rows(sq::matrix_view<float>(data.data(), rows, dim, stride));
    for (std::size_t r = 0; r < rows; ++r) {
      const std::vector<float> row_in(original.begin() + static_cast<std::ptrdiff_t>(r * stride),
                                      original.begin() + static_cast<std::ptrdiff_t>(r * stride + dim));
      const std::vector<float> row_out(data.begin() + static_cast<std::ptrdiff_t>(r * stride),
                                       data.begin() + static_cast<std::ptrdiff_t>(r * stride + dim));
      check_against_product(row_in, row_out, 200 * eps<float>());
      for (std::size_t p = dim; p < stride; ++p) CHECK(data[r * stride + p] == original[r * stride + p]);
    }
    auto data_d = sq_test::random_normal<double>(rows * dim, 200 + rows);
    const auto original_d = data_d;
    seq.apply_rows(sq::matrix_view<double>(data_d.data(), rows, dim));
    for (std::size_t r = 0; r < rows; ++r) {
      const auto first = original_d.begin() + static_cast<std::ptrdiff_t>(r * dim);
      const auto expected = reference_apply(seq, std::vector<double>(first, first + static_cast<std::ptrdiff_t>(dim)));
      for (std::size_t c = 0; c < dim; ++c)
        CHECK(std::fabs(data_d[r * dim + c] - static_cast<double>(expected[c])) <= 1e-13);
    }
  }
}

TEST_CASE_TEMPLATE("givens_sequence: inverse undoes apply; inverse() and regrouped()", T, float, double) {
  const std::size_t dim = 29;
  const auto seq = random_sequence<T>(dim, 150, 21);
  const double tolerance = std::is_same_v<T, float> ? 1e-5 : 1e-12;

  auto x = sq_test::random_normal<double>(dim, 3);
  auto y = x;
  seq.apply(y);
  seq.apply_inverse(y);
  for (std::size_t c = 0; c < dim; ++c) CHECK(std::fabs(y[c] - x[c]) <= tolerance);

  auto rows = sq_test::random_normal<float>(33 * dim, 4);
  auto rows_copy = rows;
  const sq::matrix_view<float> view(rows.data(), 33, dim);
  seq.apply_rows(view);
  seq.apply_rows_inverse(view);
  for (std::size_t k = 0; k < rows.size(); ++k) CHECK(std::fabs(rows[k] - rows_copy[k]) <= 1e-5);

  // inverse(): reversed stages of inverted rotations; its dense form is G^T.
  const auto inverse = seq.inverse();
  CHECK(inverse.rotation_count() == seq.rotation_count());
  const auto g = seq.to_dense(), gi = inverse.to_dense();
  for (std::size_t r = 0; r < dim; ++r)
    for (std::size_t c = 0; c < dim; ++c) CHECK(std::fabs(gi[r * dim + c] - g[c * dim + r]) <= 1e-13);
  auto z = x;
  inverse.apply(z);
  auto w = x;
  seq.apply_inverse(w);
  for (std::size_t c = 0; c < dim; ++c) CHECK(z[c] == w[c]);

  // regrouped(): the same product in at most as many stages, each a valid disjoint stage.
  const auto regrouped = seq.regrouped();
  CHECK(regrouped.rotation_count() == seq.rotation_count());
  CHECK(regrouped.stage_count() <= seq.stage_count());
  const auto gr = regrouped.to_dense();
  for (std::size_t k = 0; k < dim * dim; ++k) CHECK(std::fabs(gr[k] - g[k]) <= 1e-13);
  for (const auto& stage : regrouped.stages())
    CHECK_NOTHROW(sq::givens_stage<T>(std::vector<sq::givens<T>>(stage.rotations().begin(), stage.rotations().end())));
}

TEST_CASE("givens_sequence: regrouped() reaches the longest chain of channel-sharing rotations") {
  // Every rotation pushed as its own stage; the optimum is the longest dependency chain, computed
  // here by an O(k^2) dynamic programme over the flat list.
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    const std::size_t dim = 12;
    std::mt19937_64 rng(seed);
    sq::givens_sequence<double> seq(dim);
    std::vector<sq::givens<double>> flat;
    for (std::size_t k = 0; k < 40; ++k) {
      flat.push_back(random_rotation<double>(rng, dim));
      seq.push_back_stage(sq::givens_stage<double>({flat.back()}));
    }
    CHECK(seq.stage_count() == 40);
    std::vector<std::size_t> depth(flat.size(), 1);
    std::size_t longest = 0;
    for (std::size_t b = 0; b < flat.size(); ++b) {
      for (std::size_t a = 0; a < b; ++a) {
        const bool shares = flat[a].i == flat[b].i || flat[a].i == flat[b].j || flat[a].j == flat[b].i ||
                            flat[a].j == flat[b].j;
        if (shares) depth[b] = std::max(depth[b], depth[a] + 1);
      }
      longest = std::max(longest, depth[b]);
    }
    const auto regrouped = seq.regrouped();
    CHECK(regrouped.stage_count() == longest);
    const auto a = seq.to_dense(), b = regrouped.to_dense();
    for (std::size_t k = 0; k < a.size(); ++k) CHECK(std::fabs(a[k] - b[k]) <= 1e-13);
  }
}

TEST_CASE_TEMPLATE("givens_sequence: 10,000 random rotations stay orthogonal", T, float, double) {
  const std::size_t dim = 64;
  const auto seq = random_sequence<T>(dim, 10000, 77);
  const double tolerance = std::is_same_v<T, float> ? 1e-5 : 1e-12;
  const auto dense = seq.to_dense();  // built in double from T coefficients
  CHECK(sq_test::orthogonality_error(dense, dim) <= tolerance);

  // Applied in T to the identity rows: the online path itself stays orthogonal.
  std::vector<T> identity(dim * dim, T(0));
  for (std::size_t r = 0; r < dim; ++r) identity[r * dim + r] = T(1);
  seq.apply_rows(sq::matrix_view<T>(identity.data(), dim, dim));
  CHECK(sq_test::orthogonality_error(std::vector<double>(identity.begin(), identity.end()), dim) <= tolerance);

  // Apply then invert returns the input within the same tolerance.
  auto x = sq_test::random_normal<T>(5 * dim, 8);
  const auto original = x;
  const sq::matrix_view<T> view(x.data(), 5, dim);
  seq.apply_rows(view);
  seq.apply_rows_inverse(view);
  double worst = 0;
  for (std::size_t k = 0; k < x.size(); ++k)
    worst = std::max(worst, std::fabs(static_cast<double>(x[k]) - static_cast<double>(original[k])));
  CHECK(worst <= tolerance);
}

TEST_CASE_TEMPLATE("givens_sequence: the tiled matrix path equals the per-row path", U, float, double) {
  // Dense stages on enough rows take the SIMD tiled path; the vector path is plain scalar code.
  const std::size_t dim = 100, rows = 53;
  std::mt19937_64 rng(5);
  sq::givens_sequence<double> seq(dim);
  for (int s = 0; s < 3; ++s) {
    std::vector<std::size_t> channels(dim);
    for (std::size_t k = 0; k < dim; ++k) channels[k] = k;
    std::shuffle(channels.begin(), channels.end(), rng);
    std::vector<sq::givens<double>> stage;
    for (std::size_t k = 0; k + 1 < dim; k += 2)
      stage.push_back(sq::givens<double>::from_angle(channels[k], channels[k + 1], 0.37 * double(k + 1) + s));
    seq.push_back_stage(sq::givens_stage<double>(std::move(stage)));
  }
  auto x = sq_test::random_normal<U>(rows * dim, 9);
  auto per_row = x;
  seq.apply_rows(sq::matrix_view<U>(x.data(), rows, dim));
  for (std::size_t r = 0; r < rows; ++r) seq.apply(sq::vector_view<U>(per_row.data() + r * dim, dim));
  // The same operations in the same order: bit-identical (FMA in both or in neither).
  CHECK(x == per_row);
}

TEST_CASE("fold_into_weights: (x G)(W G)^T == x W^T, float weights folded in double") {
  const std::size_t n = 48, out = 20, tokens = 9;
  const auto seq = random_sequence<double>(n, 200, 31);
  auto x = sq_test::random_normal<float>(tokens * n, 1);
  auto w = sq_test::random_normal<float>(out * n, 2);
  std::vector<double> y(tokens * out, 0.0);
  for (std::size_t t = 0; t < tokens; ++t)
    for (std::size_t o = 0; o < out; ++o)
      for (std::size_t k = 0; k < n; ++k) y[t * out + o] += double(x[t * n + k]) * double(w[o * n + k]);

  // Reference fold: W in double, rotated, rounded to float once.
  std::vector<double> w_double(w.begin(), w.end());
  seq.apply_rows(sq::matrix_view<double>(w_double.data(), out, n));
  sq::fold_into_weights(seq, sq::matrix_view<float>(w.data(), out, n));
  for (std::size_t k = 0; k < w.size(); ++k)
    CHECK(std::fabs(double(w[k]) - w_double[k]) <= eps<float>() * std::fabs(w_double[k]) + 1e-30);

  seq.apply_rows(sq::matrix_view<float>(x.data(), tokens, n));
  for (std::size_t t = 0; t < tokens; ++t)
    for (std::size_t o = 0; o < out; ++o) {
      double rotated = 0;
      for (std::size_t k = 0; k < n; ++k) rotated += double(x[t * n + k]) * double(w[o * n + k]);
      CHECK(std::fabs(rotated - y[t * out + o]) <= 1e-4);
    }

  // Double weights: the same operation as apply_rows.
  auto wd = sq_test::random_normal<double>(out * n, 3);
  auto wd_reference = wd;
  sq::fold_into_weights(seq, sq::matrix_view<double>(wd.data(), out, n));
  seq.apply_rows(sq::matrix_view<double>(wd_reference.data(), out, n));
  CHECK(wd == wd_reference);
}

TEST_CASE("givens: mismatched sizes are errors naming both sizes; nothing is written") {
  const auto seq = random_sequence<double>(8, 20, 1);
  std::vector<float> x(7, 1.5f);
  SQ_CHECK_ERROR_CONTAINS(seq.apply(x), "givens_sequence::apply", "length 7", "dim 8");
  SQ_CHECK_ERROR_CONTAINS(seq.apply_inverse(x), "givens_sequence::apply_inverse", "length 7", "dim 8");
  std::vector<double> m(3 * 9, 2.5);
  SQ_CHECK_ERROR_CONTAINS(seq.apply_rows(sq::matrix_view<double>(m.data(), 3, 9)), "givens_sequence::apply_rows",
                          "length 9", "dim 8");
  SQ_CHECK_ERROR_CONTAINS(seq.apply_rows_inverse(sq::matrix_view<double>(m.data(), 3, 9)),
                          "givens_sequence::apply_rows_inverse", "length 9", "dim 8");
  SQ_CHECK_ERROR_CONTAINS(sq::fold_into_weights(seq, sq::matrix_view<double>(m.data(), 3, 9)),
                          "fold_into_weights", "9", "dim 8");
  const sq::givens_stage<double> stage({sq::givens<double>::from_angle(1, 7, 0.3)});
  SQ_CHECK_ERROR_CONTAINS(sq::apply_stage(stage, sq::vector_view<float>(x)), "apply_stage", "channel 7",
                          "length 7");
  SQ_CHECK_ERROR_CONTAINS(sq::apply_stage_rows(stage, sq::matrix_view<float>(x.data(), 1, 7)), "apply_stage_rows",
                          "channel 7", "length 7");
  for (float v : x) CHECK(v == 1.5f);
  for (double v : m) CHECK(v == 2.5);
}

TEST_CASE("givens: stage free functions, converted(), empty and degenerate inputs") {
  using G = sq::givens<double>;
  const sq::givens_stage<double> stage({G::from_angle(0, 3, 0.3), G::from_angle(1, 2, -1.1)});
  sq::givens_sequence<double> seq(5);
  seq.push_back_stage(stage);
  auto a = sq_test::random_normal<float>(5, 1);
  auto b = a;
  sq::apply_stage(stage, sq::vector_view<float>(a));
  seq.apply(b);
  CHECK(a == b);
  sq::apply_stage_inverse(stage, sq::vector_view<float>(a));
  seq.apply_inverse(b);
  CHECK(a == b);
  auto rows = sq_test::random_normal<double>(20 * 5, 2);
  auto rows2 = rows;
  sq::apply_stage_rows(stage, sq::matrix_view<double>(rows.data(), 20, 5));
  seq.apply_rows(sq::matrix_view<double>(rows2.data(), 20, 5));
  CHECK(rows == rows2);
  sq::apply_stage_rows_inverse(stage, sq::matrix_view<double>(rows.data(), 20, 5));
  seq.apply_rows_inverse(sq::matrix_view<double>(rows2.data(), 20, 5));
  CHECK(rows == rows2);

  // Built in double, stored in float.
  const auto as_float = random_sequence<double>(16, 50, 3).converted<float>();
  CHECK(as_float.rotation_count() == 50);
  CHECK(sq_test::orthogonality_error(as_float.to_dense(), 16) <= 1e-6);

  // Empty sequence and empty matrices are no-ops; append composes.
  sq::givens_sequence<float> none(4);
  std::vector<float> v = {1.f, 2.f, 3.f, 4.f};
  none.apply(v);
  CHECK(v == std::vector<float>{1.f, 2.f, 3.f, 4.f});
  seq.apply_rows(sq::matrix_view<double>(rows.data(), 0, 5));
  auto twice = seq;
  twice.append(seq);
  CHECK(twice.rotation_count() == 4);
  auto self = seq;
  self.append(self);
  CHECK(self == twice);

  // NaN data propagates only into the channels it is rotated with, without UB.
  std::vector<float> with_nan = {NAN, 1.f, 2.f, 3.f, 4.f};
  seq.apply(with_nan);
  CHECK(std::isnan(with_nan[0]));
  CHECK(std::isnan(with_nan[3]));
  CHECK(!std::isnan(with_nan[1]));
  CHECK(!std::isnan(with_nan[2]));
  CHECK(with_nan[4] == 4.f);
}

TEST_CASE("issue 14 - givens_sequence: a huge dimension is a singlequant error, not std::bad_alloc") {
  SQ_CHECK_ERROR_CONTAINS(sq::givens_sequence<double>(std::size_t{1} << 40), "givens_sequence", "dimension",
                          "allocation limit");
  SQ_CHECK_ERROR_CONTAINS(sq::givens_sequence<float>(~std::size_t{0}), "givens_sequence", "allocation limit");
}
