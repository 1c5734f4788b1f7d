// singlequant/detail/arch/sse.hpp - forwarding header: the 128-bit helpers are in sse2.hpp (one file
// per ISA level). Kept for branches written against the old name.
#ifndef SINGLEQUANT_DETAIL_ARCH_SSE_HPP
#define SINGLEQUANT_DETAIL_ARCH_SSE_HPP
#include "sse2.hpp"  // IWYU pragma: export
#endif  // SINGLEQUANT_DETAIL_ARCH_SSE_HPP
