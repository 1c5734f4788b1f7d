// singlequant/detail/arch/base_tag.hpp - the root of xsimd's architecture tags: xsimd::generic up to
// xsimd 13, renamed xsimd::common in xsimd 14. The fallbacks of detail/arch/ overload on it.
#ifndef SINGLEQUANT_DETAIL_ARCH_BASE_TAG_HPP
#define SINGLEQUANT_DETAIL_ARCH_BASE_TAG_HPP

#include <xsimd/xsimd.hpp>

#include "../../config.hpp"

SINGLEQUANT_BEGIN_NAMESPACE
namespace detail::arch {
#if defined(XSIMD_VERSION_MAJOR) && XSIMD_VERSION_MAJOR >= 14
using base_tag = xsimd::common;
#else
using base_tag = xsimd::generic;
#endif
}  // namespace detail::arch
SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_DETAIL_ARCH_BASE_TAG_HPP
