// Runtime dispatch: compiled without -march flags; the kernels come from per-ISA translation units.
// Runs every public entry point on each isa this CPU has and compares with the scalar path.
#include <singlequant/singlequant.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

namespace sq = singlequant;

int main() {
  static_assert(SINGLEQUANT_RUNTIME_DISPATCH == 1);
  std::vector<float> x(1001), y(1001);
  for (std::size_t i = 0; i < x.size(); ++i) {
    x[i] = std::sin(static_cast<float>(i)) * 3.f;
    y[i] = std::cos(static_cast<float>(i));
  }
  x[500] = NAN;
  sq::set_isa_limit(sq::isa::scalar);
  const float absmax_reference = sq::absmax(x);
  x[500] = 0.f;
  const float dot_reference = sq::dot(x, y);
  x[500] = NAN;
  int failures = 0;
  for (sq::isa path : {sq::isa::sse2, sq::isa::sse4_2, sq::isa::avx2_fma, sq::isa::avx512bw}) {
    if (!sq::host_cpu().supports(path)) {
      std::printf("%s: not supported by this CPU, skipped\n", sq::isa_name(path).data());
      continue;
    }
    sq::set_isa_limit(path);
    const sq::isa active = sq::active_isa();
    const float a = sq::absmax(x);
    x[500] = 0.f;
    const float d = sq::dot(x, y);
    x[500] = NAN;
    const bool ok = active == path && a == absmax_reference &&
                    std::fabs(d - dot_reference) <= 1e-3f * std::fabs(dot_reference) + 1e-3f;
    std::printf("%s: active %s, absmax %g, dot %g: %s\n", sq::isa_name(path).data(),
                sq::isa_name(active).data(), static_cast<double>(a), static_cast<double>(d),
                ok ? "ok" : "MISMATCH");
    failures += ok ? 0 : 1;
  }
  return failures == 0 ? 0 : 1;
}
