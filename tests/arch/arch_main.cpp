// Main of a per-ISA test executable. Compiled WITHOUT that ISA's flags, so the CPU check below runs
// before any instruction the CPU might lack; exits 77 (ctest: skipped) when the ISA is unavailable.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <singlequant/isa.hpp>

int main(int argc, char** argv) {
  constexpr auto tested = singlequant::isa::SINGLEQUANT_TEST_ISA;
  if (!singlequant::host_cpu().supports(tested)) {
    std::printf("skipped: this CPU/OS cannot run %s, so its kernels are not tested here\n",
                singlequant::isa_name(tested).data());
    return 77;
  }
  std::printf("testing the %s kernels against the scalar path\n", singlequant::isa_name(tested).data());
  doctest::Context context(argc, argv);
  return context.run();
}
