// singlequant/simd.hpp - the xsimd glue: architecture tags, compatibility shims, kernel dispatch.
//
// How singlequant uses SIMD (the one architecture decision every kernel follows):
//  * A kernel is a class template whose LAST template parameter is an architecture tag:
//        template <class Arch> struct absmax_kernel { static float run(const float*, std::size_t) noexcept; };
//    with its member functions declared in the class and defined out of it (never inline in-class),
//    and with signatures that use only plain types (pointers, sizes); xsimd batches appear only in
//    bodies and in free helper templates that are themselves templated on Arch.
//  * Arch is an xsimd tag (xsimd::sse2, xsimd::sse4_2, xsimd::fma3<xsimd::avx2>, xsimd::avx512bw, ...)
//    or simd::scalar_arch, the portable reference path every kernel must implement (tests hold every
//    SIMD path against it).
//  * Public entry points call detail::dispatch([&](auto arch) { return K<decltype(arch)>::run(...); }).
//    Static mode (default): the arch is xsimd::default_arch, the best the including translation unit
//    is compiled for, so -march=native gets AVX-512 with no effort.
//    Runtime mode (SINGLEQUANT_RUNTIME_DISPATCH=1, set up by the CMake helper
//    singlequant_add_dispatch_kernels): every kernel is compiled once per architecture in its own
//    translation unit (singlequant/instantiate.hpp) and dispatch picks the best one this CPU and OS
//    support (isa.hpp), capped by set_isa_limit() or the SINGLEQUANT_ISA environment variable.
//  * ODR safety: everything a kernel calls is a template on Arch or has internal linkage, so an
//    AVX-512 copy of a helper can never be picked by the linker for the SSE2 path.
#ifndef SINGLEQUANT_SIMD_HPP
#define SINGLEQUANT_SIMD_HPP

#include <atomic>
#include <cstdlib>
#include <string_view>
#include <type_traits>

#include "config.hpp"
#include "detail/simd_core.hpp"
#include "isa.hpp"

SINGLEQUANT_BEGIN_NAMESPACE

namespace simd {

/// The singlequant isa an architecture tag runs as (x86 tags; anything else maps to scalar).
template <class Arch>
constexpr isa isa_of() noexcept {
  if constexpr (is_scalar_v<Arch>) {
    return isa::scalar;
  } else if constexpr (std::is_base_of_v<xsimd::avx512bw, Arch>) {
    return isa::avx512bw;
  } else if constexpr (std::is_base_of_v<xsimd::fma3<xsimd::avx2>, Arch> ||
                       std::is_base_of_v<xsimd::avx512f, Arch>) {
    return isa::avx2_fma;
  } else if constexpr (std::is_base_of_v<xsimd::sse4_2, Arch>) {
    return isa::sse4_2;
  } else if constexpr (std::is_base_of_v<xsimd::sse2, Arch>) {
    return isa::sse2;
  } else {
    return isa::scalar;
  }
}

}  // namespace simd

namespace detail {

inline std::atomic<int>& isa_limit_storage() noexcept {
  static std::atomic<int> limit{-1};  // -1: not read from the environment yet
  return limit;
}

/// Parses SINGLEQUANT_ISA ("scalar", "sse2", "sse4.2", "avx2", "avx512bw"); unknown -> no cap.
inline int isa_limit_from_environment() noexcept {
  const char* value = std::getenv("SINGLEQUANT_ISA");  // NOLINT(concurrency-mt-unsafe): read once
  if (value == nullptr) return static_cast<int>(isa::avx512bw);
  const std::string_view text(value);
  if (text == "scalar") return static_cast<int>(isa::scalar);
  if (text == "sse2") return static_cast<int>(isa::sse2);
  if (text == "sse4.2" || text == "sse4_2") return static_cast<int>(isa::sse4_2);
  if (text == "avx2" || text == "avx2+fma") return static_cast<int>(isa::avx2_fma);
  return static_cast<int>(isa::avx512bw);
}

constexpr bool isa_compiled_for_dispatch(isa path) noexcept {
  switch (path) {
    case isa::scalar: return true;
    case isa::sse2: return SINGLEQUANT_DISPATCH_SSE2 != 0;
    case isa::sse4_2: return SINGLEQUANT_DISPATCH_SSE4_2 != 0;
    case isa::avx2_fma: return SINGLEQUANT_DISPATCH_AVX2 != 0;
    case isa::avx512bw: return SINGLEQUANT_DISPATCH_AVX512BW != 0;
  }
  return false;
}

}  // namespace detail

/// Caps the isa runtime dispatch may choose (for testing a slower path or working around a CPU
/// erratum). Has no effect in static mode, where the compile flags decide.
inline void set_isa_limit(isa limit) noexcept {
  detail::isa_limit_storage().store(static_cast<int>(limit), std::memory_order_relaxed);
}

/// The isa the public entry points of this translation unit run on right now.
[[nodiscard]] inline isa active_isa() noexcept {
#if SINGLEQUANT_RUNTIME_DISPATCH && !defined(SINGLEQUANT_FORCE_SCALAR)
  int limit = detail::isa_limit_storage().load(std::memory_order_relaxed);
  if (limit < 0) {
    limit = detail::isa_limit_from_environment();
    detail::isa_limit_storage().store(limit, std::memory_order_relaxed);
  }
  for (int i = limit; i > 0; --i) {
    const auto path = static_cast<isa>(i);
    if (detail::isa_compiled_for_dispatch(path) && host_cpu().supports(path)) return path;
  }
  return isa::scalar;
#else
  return simd::isa_of<simd::default_arch>();
#endif
}

namespace detail {

/// Calls kernel_call(arch_tag) with the architecture the entry points run on (see the file comment).
template <class KernelCall>
SINGLEQUANT_INLINE decltype(auto) dispatch(KernelCall&& kernel_call) {
#if SINGLEQUANT_RUNTIME_DISPATCH && !defined(SINGLEQUANT_FORCE_SCALAR)
  switch (active_isa()) {
#  if SINGLEQUANT_DISPATCH_AVX512BW
    case isa::avx512bw: return kernel_call(xsimd::avx512bw{});
#  endif
#  if SINGLEQUANT_DISPATCH_AVX2
    case isa::avx2_fma: return kernel_call(xsimd::fma3<xsimd::avx2>{});
#  endif
#  if SINGLEQUANT_DISPATCH_SSE4_2
    case isa::sse4_2: return kernel_call(xsimd::sse4_2{});
#  endif
#  if SINGLEQUANT_DISPATCH_SSE2
    case isa::sse2: return kernel_call(xsimd::sse2{});
#  endif
    default: return kernel_call(simd::scalar_arch{});
  }
#else
  return kernel_call(simd::default_arch{});
#endif
}

}  // namespace detail

SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_SIMD_HPP
