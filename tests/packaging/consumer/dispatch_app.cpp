// Runtime dispatch: compiled without -march flags; the kernels come from per-ISA translation units.
// Runs public entry points of each kernel family on every isa this CPU has and compares with the
// scalar path (bit for bit where the operation order is the same on every path).
#include <singlequant/singlequant.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

namespace sq = singlequant;

namespace {
struct results {
  float absmax = 0, dot = 0;
  std::vector<float> rotated;
  std::vector<float> hadamard;  // FWHT of 4096, then the 2752 = 172 x 16 transform of a prefix
  std::vector<std::uint8_t> codes;
  std::vector<float> scales;
};

results run_all(std::vector<float> x, const std::vector<float>& y) {
  results r;
  r.absmax = sq::absmax(x);
  constexpr std::size_t rows = 64, cols = 32;
  // Fused per-token INT4 quantisation of a batch that holds a NaN (bit-exact on every path).
  r.codes.resize(rows * cols / 2);
  r.scales.resize(rows);
  sq::quantize_rows_fused(sq::matrix_view<const float>(x.data(), rows, cols), r.codes, r.scales, 0.9,
                          sq::int4_grid::symmetric7);
  x[500] = 0.f;
  r.dot = sq::dot(x, y);
  // A full stage of rotations over a 64 x 32 batch (the tiled kernel).
  sq::givens_sequence<float> seq(cols);
  for (std::size_t k = 0; k < cols; k += 2) seq.push_back(sq::givens<float>::from_angle(k, k + 1, 0.1 * double(k + 1)));
  r.rotated.assign(x.begin(), x.begin() + rows * cols);
  seq.apply_rows(sq::matrix_view<float>(r.rotated, rows, cols));
  // Hadamard kernels (bit-exact on every path: the same butterfly and table order).
  r.hadamard = x;
  sq::fwht(r.hadamard);
  sq::hadamard_transform<float>(2752, {.randomized = true, .seed = 3})
      .apply(sq::vector_view<float>(r.hadamard.data(), 2752));
  return r;
}
}  // namespace

int main() {
  static_assert(SINGLEQUANT_RUNTIME_DISPATCH == 1);
  std::vector<float> x(4096), y(4096);
  for (std::size_t i = 0; i < x.size(); ++i) {
    x[i] = std::sin(static_cast<float>(i)) * 3.f;
    y[i] = std::cos(static_cast<float>(i));
  }
  x[500] = NAN;
  sq::set_isa_limit(sq::isa::scalar);
  const results reference = run_all(x, y);
  int failures = 0;
  for (sq::isa path : {sq::isa::sse2, sq::isa::sse4_2, sq::isa::avx2_fma, sq::isa::avx512bw}) {
    if (!sq::host_cpu().supports(path)) {
      std::printf("%s: not supported by this CPU, skipped\n", sq::isa_name(path).data());
      continue;
    }
    sq::set_isa_limit(path);
    const sq::isa active = sq::active_isa();
    const results got = run_all(x, y);
    // Rotations may differ in the last bit where one path fuses multiply-adds and the other not.
    double rotation_error = 0;
    for (std::size_t i = 0; i < got.rotated.size(); ++i)
      rotation_error = std::fmax(rotation_error, std::fabs(double(got.rotated[i]) - double(reference.rotated[i])));
    const bool ok = active == path && got.absmax == reference.absmax &&
                    std::fabs(got.dot - reference.dot) <= 1e-3f * std::fabs(reference.dot) + 1e-3f &&
                    rotation_error <= 1e-5;
    const bool codes_ok = got.codes == reference.codes && got.scales == reference.scales &&
                          got.hadamard == reference.hadamard;
    std::printf("%s: active %s, absmax %g, dot %g, max rotation diff %g, codes and hadamard %s: %s\n",
                sq::isa_name(path).data(), sq::isa_name(active).data(), static_cast<double>(got.absmax),
                static_cast<double>(got.dot), rotation_error, codes_ok ? "equal" : "DIFFER",
                ok && codes_ok ? "ok" : "MISMATCH");
    failures += ok && codes_ok ? 0 : 1;
  }
  return failures == 0 ? 0 : 1;
}
