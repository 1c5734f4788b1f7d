// Finds four +-1 sequences of length m with zero total periodic autocorrelation (the first rows of
// the circulants A, B, C, D of a Goethals-Seidel array of order 4m), restricted to sequences that
// are constant on the orbits of Z_m under multiplication by a subgroup G of the units (so every
// periodic autocorrelation PAF_s is constant on those orbits as well).
//
// Meet in the middle, split by row sums: sum(A)^2 + sum(B)^2 + sum(C)^2 + sum(D)^2 = 4m must hold,
// so for every decomposition of 4m into four odd squares, PAF(A) + PAF(B) of the candidates with the
// first two row sums is hashed and -(PAF(C) + PAF(D)) looked up. Deterministic: the first solution in
// enumeration order is printed as four lines of +/-.
//
// Build: g++ -O2 -std=c++20 tools/goethals_seidel_search.cpp -o gs_search
// Usage: ./gs_search 39 16      (order m, generator of G)
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <unordered_map>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  const int m = std::atoi(argv[1]);
  std::vector<int> group{1};
  for (int i = 2; i < argc; ++i) {
    const int g = std::atoi(argv[i]);
    for (bool grew = true; grew;) {
      grew = false;
      for (std::size_t k = 0; k < group.size(); ++k) {
        const int e = group[k] * g % m;
        bool present = false;
        for (int x : group) present = present || x == e;
        if (!present) { group.push_back(e); grew = true; }
      }
    }
  }
  std::vector<std::vector<int>> orbits;
  std::vector<int> seen(static_cast<std::size_t>(m), 0);
  for (int x = 0; x < m; ++x) {
    if (seen[static_cast<std::size_t>(x)]) continue;
    std::set<int> orbit;
    for (int g : group) orbit.insert(x * g % m);
    for (int y : orbit) seen[static_cast<std::size_t>(y)] = 1;
    orbits.emplace_back(orbit.begin(), orbit.end());
  }
  std::vector<int> shifts;
  for (const auto& o : orbits)
    if (o[0] != 0) shifts.push_back(o[0]);
  const std::size_t free_signs = orbits.size();
  std::fprintf(stderr, "group order %zu, %zu orbits, %zu shifts\n", group.size(), free_signs,
               shifts.size());
  struct candidate { std::vector<int> v; std::string paf; int sum; };
  std::map<int, std::vector<candidate>> by_sum;
  for (unsigned long mask = 0; mask < (1ul << free_signs); ++mask) {
    std::vector<int> v(static_cast<std::size_t>(m));
    for (std::size_t k = 0; k < free_signs; ++k)
      for (int x : orbits[k]) v[static_cast<std::size_t>(x)] = (mask >> k) & 1 ? -1 : 1;
    int sum = 0;
    for (int x : v) sum += x;
    if (sum < 0) continue;  // negating a sequence keeps its PAF
    std::string paf;
    for (int s : shifts) {
      int p = 0;
      for (int i = 0; i < m; ++i) p += v[static_cast<std::size_t>(i)] * v[static_cast<std::size_t>((i + s) % m)];
      paf.push_back(static_cast<char>(p));
    }
    by_sum[sum].push_back({v, paf, sum});
  }
  auto add = [](const std::string& a, const std::string& b, int sign) {
    std::string out(a.size(), 0);
    for (std::size_t i = 0; i < a.size(); ++i) out[i] = static_cast<char>(sign * (a[i] + b[i]));
    return out;
  };
  const int n4 = 4 * m;
  for (int s1 = 1; s1 * s1 <= n4; s1 += 2)
    for (int s2 = 1; s2 <= s1 && s1 * s1 + s2 * s2 <= n4; s2 += 2)
      for (int s3 = 1; s3 <= s2 && s1 * s1 + s2 * s2 + s3 * s3 <= n4; s3 += 2)
        for (int s4 = 1; s4 <= s3; s4 += 2) {
          if (s1 * s1 + s2 * s2 + s3 * s3 + s4 * s4 != n4) continue;
          std::fprintf(stderr, "row sums %d %d %d %d\n", s1, s2, s3, s4);
          std::unordered_map<std::string, std::pair<const candidate*, const candidate*>> pairs;
          for (const auto& a : by_sum[s1])
            for (const auto& b : by_sum[s2]) pairs.emplace(add(a.paf, b.paf, 1), std::make_pair(&a, &b));
          for (const auto& c : by_sum[s3])
            for (const auto& d : by_sum[s4]) {
              auto it = pairs.find(add(c.paf, d.paf, -1));
              if (it == pairs.end()) continue;
              for (const candidate* found : {it->second.first, it->second.second, &c, &d}) {
                for (int x : found->v) std::putchar(x > 0 ? '+' : '-');
                std::putchar('\n');
              }
              return 0;
            }
        }
  std::fprintf(stderr, "no solution\n");
  return 1;
}
