// singlequant/instantiate.hpp - defines every kernel for one architecture (runtime dispatch mode).
//
// A per-architecture translation unit, compiled with that architecture's flags, does:
//     #define SINGLEQUANT_INSTANTIATE_ARCH xsimd::avx512bw
//     #include <singlequant/instantiate.hpp>
// The CMake helper singlequant_add_dispatch_kernels() generates these files; use it rather than
// writing them by hand. Every kernel of the library is listed below; a kernel missing here is a link
// error in dispatch mode (tests/packaging/dispatch checks that the program links and runs).
#ifndef SINGLEQUANT_INSTANTIATE_ARCH
#  error "define SINGLEQUANT_INSTANTIATE_ARCH (an xsimd architecture tag) before including instantiate.hpp"
#endif

#include "singlequant.hpp"

static_assert(SINGLEQUANT_INSTANTIATE_ARCH::supported(),
              "this translation unit is not compiled with the flags of SINGLEQUANT_INSTANTIATE_ARCH");

#define SINGLEQUANT_INSTANTIATE_KERNEL(KERNEL, ...) \
  template struct ::singlequant::detail::KERNEL<__VA_ARGS__ __VA_OPT__(, ) SINGLEQUANT_INSTANTIATE_ARCH>;

// The kernel list (keep in the order of the headers).
SINGLEQUANT_INSTANTIATE_KERNEL(reduce_kernel)
SINGLEQUANT_INSTANTIATE_KERNEL(givens_kernel, float)
SINGLEQUANT_INSTANTIATE_KERNEL(givens_kernel, double)
SINGLEQUANT_INSTANTIATE_KERNEL(hadamard_kernel)
SINGLEQUANT_INSTANTIATE_KERNEL(kronecker_kernel)
SINGLEQUANT_INSTANTIATE_KERNEL(quant_kernel)
SINGLEQUANT_INSTANTIATE_KERNEL(moment_kernel)
SINGLEQUANT_INSTANTIATE_KERNEL(dense_kernel, float)
SINGLEQUANT_INSTANTIATE_KERNEL(dense_kernel, double)
SINGLEQUANT_INSTANTIATE_KERNEL(int4_gemm_kernel)
