// singlequant/detail/arch/avx.hpp - forwarding header: the 256-bit helpers are in avx2.hpp (one file
// per ISA level). Kept for branches written against the old name.
#ifndef SINGLEQUANT_DETAIL_ARCH_AVX_HPP
#define SINGLEQUANT_DETAIL_ARCH_AVX_HPP
#include "avx2.hpp"  // IWYU pragma: export
#endif  // SINGLEQUANT_DETAIL_ARCH_AVX_HPP
