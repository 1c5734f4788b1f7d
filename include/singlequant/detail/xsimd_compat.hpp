// singlequant/detail/xsimd_compat.hpp - the one place that knows which xsimd version is in use.
//
// singlequant supports xsimd 8.1 (Debian 12) through 14.x (vcpkg, Conan). The kernels use only the
// part of xsimd's API that is the same in all of them, plus what this header provides; no other file
// tests XSIMD_VERSION_*. What differs between the versions, and how it is bridged:
//  * batch_constant: batch_constant<batch<T, A>, V...> up to 12.x, batch_constant<T, A, V...> from
//    13.0; make_batch_constant's template parameters changed in 13 (<T, A, G>) and again in 14
//    (<T, G, A>). Kernels call simd::make_lane_constant<T, Arch, Generator>() instead, which names
//    the batch_constant type itself and never calls make_batch_constant.
//  * hadd was renamed reduce_add in 9.0: kernels use simd::reduce_add (simd.hpp), which calls neither.
#ifndef SINGLEQUANT_DETAIL_XSIMD_COMPAT_HPP
#define SINGLEQUANT_DETAIL_XSIMD_COMPAT_HPP

#include <cstddef>
#include <utility>

#include <xsimd/xsimd.hpp>

#include "../config.hpp"

#if !defined(XSIMD_VERSION_MAJOR) || XSIMD_VERSION_MAJOR < 8 || \
    (XSIMD_VERSION_MAJOR == 8 && XSIMD_VERSION_MINOR < 1)
#  error "singlequant needs xsimd >= 8.1"
#endif

SINGLEQUANT_BEGIN_NAMESPACE
namespace simd {

namespace compat {
#if XSIMD_VERSION_MAJOR >= 13
template <class T, class Arch, T... Values>
using batch_constant = xsimd::batch_constant<T, Arch, Values...>;
#else
template <class T, class Arch, T... Values>
using batch_constant = xsimd::batch_constant<xsimd::batch<T, Arch>, Values...>;
#endif

template <class T, class Arch, class Generator, std::size_t... Lanes>
constexpr batch_constant<T, Arch, static_cast<T>(Generator::get(Lanes, sizeof...(Lanes)))...>
lane_constant(std::index_sequence<Lanes...>) noexcept {
  return {};
}
}  // namespace compat

/// The xsimd::batch_constant of batch<T, Arch> whose lane l is Generator::get(l, lanes), where
/// Generator has `static constexpr <integer> get(std::size_t lane, std::size_t lanes)`; pass it to
/// xsimd::swizzle and the other functions that take compile-time lanes.
template <class T, class Arch, class Generator>
constexpr auto make_lane_constant() noexcept {
  return compat::lane_constant<T, Arch, Generator>(std::make_index_sequence<xsimd::batch<T, Arch>::size>());
}

}  // namespace simd
SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_DETAIL_XSIMD_COMPAT_HPP
