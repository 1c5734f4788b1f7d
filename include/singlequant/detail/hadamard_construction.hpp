// singlequant/detail/hadamard_construction.hpp - exact +-1 Hadamard matrices (no SIMD involved).
//
// Constructions (docs/method.md section 7):
//  * Sylvester: H_1 = [1], H_2n = [[H_n, H_n], [H_n, -H_n]].
//  * Paley I: q = 3 mod 4 a prime power, Jacobsthal Q[a][b] = chi(a - b) over GF(q) (chi the
//    quadratic character, chi(0) = 0); H = [[1, 1^T], [-1, Q + I]], order q + 1.
//  * Paley II: q = 1 mod 4 a prime power, conference C = [[0, 1^T], [1, Q]];
//    H = C (x) [[1, 1], [1, -1]] + I (x) [[1, -1], [-1, -1]], order 2 (q + 1).
//  * Goethals-Seidel: four +-1 sequences a, b, c, d of length m whose periodic autocorrelations sum
//    to zero at every nonzero shift give circulants A, B, C, D (A[i][j] = a[(j - i) mod m]) and
//        H = [[ A,    B R,    C R,    D R  ],
//             [-B R,  A,      D^T R, -C^T R],
//             [-C R, -D^T R,  A,      B^T R],
//             [-D R,  C^T R, -B^T R,  A    ]]     (R the back-diagonal identity), order 4 m.
//    The sequences for m = 43 (order 172) and m = 39 (order 156) are stored below; they were found
//    by tools/goethals_seidel_search.cpp (a search over sequences constant on the orbits of Z_m under
//    multiplication by a small subgroup of units) and the tests re-verify H H^T = n I.
//  * Kronecker products H_a (x) H_b.
// Every matrix is normalised so that its first row and first column are all +1.
#ifndef SINGLEQUANT_DETAIL_HADAMARD_CONSTRUCTION_HPP
#define SINGLEQUANT_DETAIL_HADAMARD_CONSTRUCTION_HPP

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../config.hpp"

SINGLEQUANT_BEGIN_NAMESPACE
namespace detail {

using sign_matrix = std::vector<std::int8_t>;  // n x n row-major, entries +-1

/// q = p^e with p prime, or nullopt. Returns {p, e}.
inline std::optional<std::pair<std::size_t, std::size_t>> prime_power(std::size_t q) {
  if (q < 2) return std::nullopt;
  std::size_t p = 0;
  for (std::size_t d = 2; d * d <= q; ++d) {
    if (q % d == 0) {
      p = d;
      break;
    }
  }
  if (p == 0) return std::make_pair(q, std::size_t{1});
  std::size_t e = 0;
  while (q % p == 0) {
    q /= p;
    ++e;
  }
  if (q != 1) return std::nullopt;
  return std::make_pair(p, e);
}

/// GF(p^e) with elements encoded as integers 0..q-1 whose base-p digits are the coefficients of a
/// polynomial of degree < e (digit i = coefficient of x^i); products are reduced modulo the first
/// monic irreducible polynomial of degree e in lexicographic order of its base-p encoding.
class galois_field {
 public:
  galois_field(std::size_t p, std::size_t e) : p_(p), e_(e), q_(1) {
    for (std::size_t i = 0; i < e; ++i) q_ *= p;
    if (e > 1) modulus_ = first_irreducible();
  }
  [[nodiscard]] std::size_t order() const noexcept { return q_; }

  [[nodiscard]] std::size_t subtract(std::size_t a, std::size_t b) const noexcept {
    if (e_ == 1) return (a + p_ - b) % p_;
    std::size_t out = 0;
    for (std::size_t i = 0, place = 1; i < e_; ++i, place *= p_, a /= p_, b /= p_)
      out += ((a % p_ + p_ - b % p_) % p_) * place;
    return out;
  }

  [[nodiscard]] std::size_t multiply(std::size_t a, std::size_t b) const {
    if (e_ == 1) return a * b % p_;
    std::vector<std::size_t> product(2 * e_ - 1, 0);
    const auto da = digits(a), db = digits(b);
    for (std::size_t i = 0; i < e_; ++i)
      for (std::size_t j = 0; j < e_; ++j) product[i + j] = (product[i + j] + da[i] * db[j]) % p_;
    reduce(product, modulus_);
    std::size_t out = 0;
    for (std::size_t i = e_; i-- > 0;) out = out * p_ + product[i];
    return out;
  }

  /// is_square[x] for every element (0 counts as not a nonzero square).
  [[nodiscard]] std::vector<bool> nonzero_squares() const {
    std::vector<bool> square(q_, false);
    for (std::size_t y = 1; y < q_; ++y) square[multiply(y, y)] = true;
    return square;
  }

 private:
  std::vector<std::size_t> digits(std::size_t a) const {
    std::vector<std::size_t> d(e_);
    for (std::size_t i = 0; i < e_; ++i, a /= p_) d[i] = a % p_;
    return d;
  }
  // poly <- poly mod monic (coefficients low to high, monic's leading coefficient 1).
  void reduce(std::vector<std::size_t>& poly, const std::vector<std::size_t>& monic) const {
    const std::size_t degree = monic.size() - 1;
    for (std::size_t top = poly.size(); top-- > degree;) {
      const std::size_t c = poly[top] % p_;
      if (c == 0) continue;
      for (std::size_t i = 0; i <= degree; ++i)
        poly[top - degree + i] = (poly[top - degree + i] + (p_ - c) * monic[i]) % p_;
    }
    poly.resize(degree);
  }
  // A monic polynomial of degree e is irreducible iff no monic polynomial of degree 1..e/2 divides it.
  std::vector<std::size_t> first_irreducible() const {
    for (std::size_t code = 0; code < q_; ++code) {
      std::vector<std::size_t> f = digits(code);
      f.push_back(1);
      bool irreducible = true;
      for (std::size_t d = 1; irreducible && 2 * d <= e_; ++d) {
        std::size_t count = 1;
        for (std::size_t i = 0; i < d; ++i) count *= p_;
        for (std::size_t g = 0; irreducible && g < count; ++g) {
          std::vector<std::size_t> divisor(d + 1, 1);
          for (std::size_t i = 0, c = g; i < d; ++i, c /= p_) divisor[i] = c % p_;
          std::vector<std::size_t> rest = f;
          reduce(rest, divisor);
          bool zero = true;
          for (std::size_t v : rest) zero = zero && v == 0;
          irreducible = !zero;
        }
      }
      if (irreducible) return f;
    }
    SINGLEQUANT_ASSERT(false, "no irreducible polynomial found");
    return {};
  }

  std::size_t p_, e_, q_;
  std::vector<std::size_t> modulus_;  // monic, degree e, coefficients low to high
};

/// Jacobsthal matrix Q[a][b] = chi(a - b) over GF(q), q = p^e (chi the quadratic character, 0 at 0).
inline std::vector<int> jacobsthal(std::size_t p, std::size_t e, std::size_t& q_out) {
  const galois_field field(p, e);
  const std::size_t q = field.order();
  q_out = q;
  const std::vector<bool> square = field.nonzero_squares();
  std::vector<int> chi_of(q);
  for (std::size_t d = 0; d < q; ++d) chi_of[d] = d == 0 ? 0 : (square[d] ? 1 : -1);
  std::vector<int> chi(q * q);
  for (std::size_t a = 0; a < q; ++a)
    for (std::size_t b = 0; b < q; ++b)
      chi[a * q + b] = chi_of[e == 1 ? (a + q - b) % q : field.subtract(a, b)];
  return chi;
}

/// Multiplies columns then rows by +-1 so that the first row and the first column are all +1.
inline void normalize_first_row_and_column(sign_matrix& h, std::size_t n) {
  for (std::size_t j = 0; j < n; ++j)
    if (h[j] < 0)
      for (std::size_t i = 0; i < n; ++i) h[i * n + j] = static_cast<std::int8_t>(-h[i * n + j]);
  for (std::size_t i = 1; i < n; ++i)
    if (h[i * n] < 0)
      for (std::size_t j = 0; j < n; ++j) h[i * n + j] = static_cast<std::int8_t>(-h[i * n + j]);
}

inline sign_matrix sylvester(std::size_t n) {
  sign_matrix h(n * n);
  // H[i][j] = (-1)^popcount(i & j) (the natural, Sylvester order).
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      std::size_t bits = i & j, parity = 0;
      for (; bits != 0; bits &= bits - 1) parity ^= 1;
      h[i * n + j] = parity ? std::int8_t{-1} : std::int8_t{1};
    }
  return h;
}

inline sign_matrix paley_one(std::size_t p, std::size_t e) {
  std::size_t q = 0;
  const std::vector<int> chi = jacobsthal(p, e, q);
  const std::size_t n = q + 1;
  sign_matrix h(n * n);
  for (std::size_t j = 0; j < n; ++j) h[j] = 1;
  for (std::size_t i = 1; i < n; ++i) {
    h[i * n] = -1;
    for (std::size_t j = 1; j < n; ++j)
      h[i * n + j] = static_cast<std::int8_t>(chi[(i - 1) * q + (j - 1)] + (i == j ? 1 : 0));
  }
  normalize_first_row_and_column(h, n);
  return h;
}

inline sign_matrix paley_two(std::size_t p, std::size_t e) {
  std::size_t q = 0;
  const std::vector<int> chi = jacobsthal(p, e, q);
  const std::size_t c_order = q + 1, n = 2 * c_order;
  auto conference = [&](std::size_t i, std::size_t j) -> int {
    if (i == 0) return j == 0 ? 0 : 1;
    if (j == 0) return 1;
    return chi[(i - 1) * q + (j - 1)];
  };
  sign_matrix h(n * n);
  for (std::size_t i = 0; i < c_order; ++i)
    for (std::size_t j = 0; j < c_order; ++j) {
      const int c = conference(i, j);
      for (std::size_t u = 0; u < 2; ++u)
        for (std::size_t v = 0; v < 2; ++v) {
          // C (x) [[1, 1], [1, -1]] + I (x) [[1, -1], [-1, -1]]
          const int sylvester_2 = (u == 1 && v == 1) ? -1 : 1;
          const int diagonal = i == j ? ((u == 0 && v == 0) ? 1 : -1) : 0;
          h[(2 * i + u) * n + 2 * j + v] = static_cast<std::int8_t>(c * sylvester_2 + diagonal);
        }
    }
  normalize_first_row_and_column(h, n);
  return h;
}

/// The stored Goethals-Seidel sequences ('+' = +1, '-' = -1), four per order 4m.
struct goethals_seidel_sequences {
  std::size_t order;
  std::string_view a, b, c, d;
};
inline constexpr goethals_seidel_sequences goethals_seidel_table[] = {
    // m = 43: constant on the orbits of the multiplier subgroup <4> of order 7 (gs_search 43 4).
    {172, "---+-+++-++-++++-++++--++++-++++-++-+++-+--", "+-+----+++---+++-++---+--++++++-+-+-+--+--+",
     "+-----++-++--+++-++----++++-++++--+-+-+-+--", "+-----++-++--+++-++----++++-++++--+-+-+-+--"},
    // m = 39: constant on the orbits of the multiplier subgroup <16> of order 3 (gs_search 39 16).
    {156, "--+--+-++--+++---+-+++-++-+-+-+++++-+++", "+--+--++++-+---+-+++++-++-+++--+-++--++",
     "-------++--++++--+-+++-++-+-++++-++++++", "+-----++-----+++-+++-+-++-+-++-+-+++-++"},
};

inline const goethals_seidel_sequences* find_goethals_seidel(std::size_t n) noexcept {
  for (const auto& entry : goethals_seidel_table)
    if (entry.order == n) return &entry;
  return nullptr;
}

inline sign_matrix goethals_seidel(const goethals_seidel_sequences& s) {
  const std::size_t m = s.a.size(), n = 4 * m;
  auto value = [](std::string_view seq, std::size_t i) { return seq[i] == '+' ? 1 : -1; };
  // Entry (i, j) of the m x m blocks: circulant X[i][j] = x[(j - i) mod m]; X R [i][j] = X[i][m-1-j];
  // X^T R [i][j] = X[m-1-j][i].
  auto circ = [&](std::string_view seq, std::size_t i, std::size_t j) { return value(seq, (j + m - i) % m); };
  auto circ_r = [&](std::string_view seq, std::size_t i, std::size_t j) { return circ(seq, i, m - 1 - j); };
  auto circ_tr = [&](std::string_view seq, std::size_t i, std::size_t j) { return circ(seq, m - 1 - j, i); };
  sign_matrix h(n * n);
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < m; ++j) {
      const int block[4][4] = {
          {circ(s.a, i, j), circ_r(s.b, i, j), circ_r(s.c, i, j), circ_r(s.d, i, j)},
          {-circ_r(s.b, i, j), circ(s.a, i, j), circ_tr(s.d, i, j), -circ_tr(s.c, i, j)},
          {-circ_r(s.c, i, j), -circ_tr(s.d, i, j), circ(s.a, i, j), circ_tr(s.b, i, j)},
          {-circ_r(s.d, i, j), circ_tr(s.c, i, j), -circ_tr(s.b, i, j), circ(s.a, i, j)}};
      for (std::size_t u = 0; u < 4; ++u)
        for (std::size_t v = 0; v < 4; ++v)
          h[(u * m + i) * n + v * m + j] = static_cast<std::int8_t>(block[u][v]);
    }
  normalize_first_row_and_column(h, n);
  return h;
}

/// How an order is built directly (without a Kronecker split), in order of preference.
enum class direct_construction { none, sylvester, paley_one, paley_two, goethals_seidel };

inline direct_construction direct_construction_of(std::size_t n) {
  if (n == 0) return direct_construction::none;
  if ((n & (n - 1)) == 0) return direct_construction::sylvester;
  if (n % 4 != 0) return direct_construction::none;
  if (const auto pe = prime_power(n - 1); pe && (n - 1) % 4 == 3) return direct_construction::paley_one;
  if (const auto pe = prime_power(n / 2 - 1); pe && (n / 2 - 1) % 4 == 1)
    return direct_construction::paley_two;
  if (find_goethals_seidel(n) != nullptr) return direct_construction::goethals_seidel;
  return direct_construction::none;
}

/// Odd part of n and the exponent of its power-of-two part: n = odd * 2^twos.
inline std::pair<std::size_t, std::size_t> split_odd(std::size_t n) noexcept {
  std::size_t twos = 0;
  while (n != 0 && n % 2 == 0) {
    n /= 2;
    ++twos;
  }
  return {n, twos};
}

/// Orders above this odd part are not searched (Paley needs a primality test by trial division).
inline constexpr std::size_t max_searched_odd_part = std::size_t{1} << 40;

inline bool order_supported(std::size_t n, std::unordered_map<std::size_t, bool>& memo);

/// Smallest a > 1 with a <= n / a such that both a and n / a are supported orders, or 0 when none.
inline std::size_t kronecker_factor(std::size_t n, std::unordered_map<std::size_t, bool>& memo) {
  const auto [odd, twos] = split_odd(n);
  std::vector<std::size_t> candidates;
  for (std::size_t d = 1; d * d <= odd; d += 2) {
    if (odd % d != 0) continue;
    for (std::size_t divisor : {d, odd / d})
      for (std::size_t i = 0, a = divisor; i <= twos; ++i, a *= 2)
        if (a > 1 && a <= n / a && (a == 2 || a % 4 == 0)) candidates.push_back(a);
  }
  std::sort(candidates.begin(), candidates.end());
  for (std::size_t a : candidates)
    if (order_supported(a, memo) && order_supported(n / a, memo)) return a;
  return 0;
}

inline bool order_supported(std::size_t n, std::unordered_map<std::size_t, bool>& memo) {
  if (n == 0) return false;
  if (n <= 2 || (n & (n - 1)) == 0) return true;
  if (n % 4 != 0 || split_odd(n).first > max_searched_odd_part) return false;
  if (auto it = memo.find(n); it != memo.end()) return it->second;
  const bool ok = direct_construction_of(n) != direct_construction::none || kronecker_factor(n, memo) != 0;
  memo.emplace(n, ok);
  return ok;
}

inline bool order_supported(std::size_t n) {
  std::unordered_map<std::size_t, bool> memo;
  return order_supported(n, memo);
}

/// n = base * 2^k with the smallest supported base, or nullopt.
inline std::optional<std::pair<std::size_t, std::size_t>> factor_base_pow2(std::size_t n) {
  if (n == 0) return std::nullopt;
  std::size_t pow2 = 1, odd = n;
  while (odd % 2 == 0) {
    odd /= 2;
    pow2 *= 2;
  }
  std::unordered_map<std::size_t, bool> memo;
  // Bases odd * 2^j in increasing order; the first supported one is the smallest.
  for (std::size_t base = odd, rest = pow2;; base *= 2, rest /= 2) {
    if (order_supported(base, memo)) return std::make_pair(base, rest);
    if (rest == 1) break;
  }
  return std::nullopt;
}

/// Kronecker product (a x a) (x) (b x b): K[(i a_b + k)][(j b + l)] = A[i][j] B[k][l].
inline sign_matrix kronecker_product(const sign_matrix& a, std::size_t na, const sign_matrix& b,
                                     std::size_t nb) {
  const std::size_t n = na * nb;
  sign_matrix out(n * n);
  for (std::size_t i = 0; i < na; ++i)
    for (std::size_t k = 0; k < nb; ++k)
      for (std::size_t j = 0; j < na; ++j)
        for (std::size_t l = 0; l < nb; ++l)
          out[(i * nb + k) * n + j * nb + l] =
              static_cast<std::int8_t>(a[i * na + j] * b[k * nb + l]);
  return out;
}

inline sign_matrix build_hadamard(std::size_t n);

/// The library's matrix of a base order (an order the transforms use as their dense factor):
/// a direct construction when one applies, else the Kronecker product of the smallest split.
/// Cached (thread-safe): repeated transforms do not rebuild their factor.
inline std::shared_ptr<const sign_matrix> cached_hadamard(std::size_t n) {
  static std::mutex mutex;
  static std::map<std::size_t, std::shared_ptr<const sign_matrix>> cache;
  {
    const std::lock_guard<std::mutex> lock(mutex);
    if (auto it = cache.find(n); it != cache.end()) return it->second;
  }
  // Built outside the lock: a Kronecker build asks the cache for its factors.
  auto built = std::make_shared<const sign_matrix>(build_hadamard(n));
  const std::lock_guard<std::mutex> lock(mutex);
  return cache.emplace(n, std::move(built)).first->second;  // keeps the first if two threads raced
}

/// The matrix of order n (supported): H_base (x) H_2^k with (base, 2^k) = factor_base_pow2(n), the
/// base built directly or as a Kronecker product of its smallest supported split.
inline sign_matrix build_hadamard(std::size_t n) {
  const auto factors = factor_base_pow2(n);
  SINGLEQUANT_ASSERT(factors.has_value(), "build_hadamard needs a supported order");
  const auto [base, pow2] = *factors;
  if (pow2 > 1) {
    if (base == 1) return sylvester(n);
    return kronecker_product(*cached_hadamard(base), base, sylvester(pow2), pow2);
  }
  switch (direct_construction_of(n)) {
    case direct_construction::sylvester: return sylvester(n);
    case direct_construction::paley_one: {
      const auto pe = prime_power(n - 1);
      return paley_one(pe->first, pe->second);
    }
    case direct_construction::paley_two: {
      const auto pe = prime_power(n / 2 - 1);
      return paley_two(pe->first, pe->second);
    }
    case direct_construction::goethals_seidel: return goethals_seidel(*find_goethals_seidel(n));
    case direct_construction::none: break;
  }
  std::unordered_map<std::size_t, bool> memo;
  const std::size_t a = kronecker_factor(n, memo);
  return kronecker_product(*cached_hadamard(a), a, *cached_hadamard(n / a), n / a);
}

}  // namespace detail
SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_DETAIL_HADAMARD_CONSTRUCTION_HPP
