// singlequant/detail/cpu.hpp - raw x86 CPUID and XCR0 reads (isa.hpp turns them into cpu_features).
#ifndef SINGLEQUANT_DETAIL_CPU_HPP
#define SINGLEQUANT_DETAIL_CPU_HPP

#include <cstdint>

#include "../config.hpp"

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64) || defined(_M_IX86)
#  define SINGLEQUANT_X86 1
#  if defined(_MSC_VER) && !defined(__clang__)
#    include <intrin.h>
#  else
#    include <cpuid.h>
#  endif
#else
#  define SINGLEQUANT_X86 0
#endif

SINGLEQUANT_BEGIN_NAMESPACE

namespace detail {

#if SINGLEQUANT_X86
struct cpuid_registers {
  std::uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};

inline cpuid_registers cpuid(std::uint32_t leaf, std::uint32_t subleaf) noexcept {
  cpuid_registers r;
#  if defined(_MSC_VER) && !defined(__clang__)
  int regs[4];
  __cpuidex(regs, static_cast<int>(leaf), static_cast<int>(subleaf));
  r.eax = static_cast<std::uint32_t>(regs[0]);
  r.ebx = static_cast<std::uint32_t>(regs[1]);
  r.ecx = static_cast<std::uint32_t>(regs[2]);
  r.edx = static_cast<std::uint32_t>(regs[3]);
#  else
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_count(leaf, subleaf, &a, &b, &c, &d) == 0) return r;  // leaf not supported
  r.eax = a;
  r.ebx = b;
  r.ecx = c;
  r.edx = d;
#  endif
  return r;
}

// XGETBV(0) via inline assembly: the intrinsic needs -mxsave, which the baseline TU must not require.
inline std::uint64_t read_xcr0() noexcept {
#  if defined(_MSC_VER) && !defined(__clang__)
  return _xgetbv(0);
#  else
  std::uint32_t low = 0, high = 0;
  __asm__ volatile("xgetbv" : "=a"(low), "=d"(high) : "c"(0));
  return (static_cast<std::uint64_t>(high) << 32) | low;
#  endif
}
#endif

constexpr bool bit(std::uint32_t value, int index) noexcept { return ((value >> index) & 1U) != 0; }

/// CPUID.(7,0):ECX bit 11, AVX512_VNNI (vpdpbusd); cached. Only meaningful where AVX-512 runs (the
/// avx512bw path, which isa.hpp already checked against XCR0, is its only user).
inline bool cpu_has_avx512_vnni() noexcept {
#if SINGLEQUANT_X86
  static const bool has = cpuid(0, 0).eax >= 7 && bit(cpuid(7, 0).ecx, 11);
  return has;
#else
  return false;
#endif
}

}  // namespace detail

SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_DETAIL_CPU_HPP
