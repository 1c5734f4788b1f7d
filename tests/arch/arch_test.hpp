// Shared helpers of the per-ISA kernel tests (tests/arch/test_*.cpp).
#ifndef SINGLEQUANT_TESTS_ARCH_TEST_HPP
#define SINGLEQUANT_TESTS_ARCH_TEST_HPP

#include <doctest/doctest.h>

#include <singlequant/simd.hpp>

namespace sq_test {
/// The architecture under test: what this translation unit's flags give.
using test_arch = singlequant::simd::default_arch;
using scalar_arch = singlequant::simd::scalar_arch;

// Guards against a build that silently compiled the ISA test without its flags.
static_assert(singlequant::simd::isa_of<test_arch>() == singlequant::isa::SINGLEQUANT_TEST_ISA,
              "per-ISA test compiled without the ISA's flags");
}  // namespace sq_test

#endif
