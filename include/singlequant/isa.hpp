// singlequant/isa.hpp - the instruction-set paths singlequant has kernels for, and which of them
// this CPU runs. Does not include xsimd.
//
// Why not xsimd::available_architectures(): xsimd 8.1 misreads AVX and never checks that the OS
// saves the AVX-512 register state (XCR0), so it can report AVX-512 on a system that would fault on
// it. We check CPUID feature bits *and* the XCR0 bits the OS enabled via XGETBV (detail/cpu.hpp).
#ifndef SINGLEQUANT_ISA_HPP
#define SINGLEQUANT_ISA_HPP

#include <cstdint>
#include <string_view>

#include "config.hpp"
#include "detail/cpu.hpp"

SINGLEQUANT_BEGIN_NAMESPACE

/// The instruction-set paths singlequant kernels are built for, from slowest to fastest.
/// `scalar` is the portable reference path every kernel has.
enum class isa : int { scalar = 0, sse2 = 1, sse4_2 = 2, avx2_fma = 3, avx512bw = 4 };

/// "scalar", "sse2", "sse4.2", "avx2+fma", "avx512bw".
[[nodiscard]] constexpr std::string_view isa_name(isa value) noexcept {
  switch (value) {
    case isa::scalar: return "scalar";
    case isa::sse2: return "sse2";
    case isa::sse4_2: return "sse4.2";
    case isa::avx2_fma: return "avx2+fma";
    case isa::avx512bw: return "avx512bw";
  }
  return "unknown";
}

/// What this CPU and OS can run.
struct cpu_features {
  bool sse2 = false;
  bool sse4_2 = false;
  bool avx2 = false;
  bool fma = false;
  bool avx512f = false;
  bool avx512cd = false;
  bool avx512dq = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool os_saves_avx = false;     // XCR0 bits 1, 2 (SSE and AVX state)
  bool os_saves_avx512 = false;  // XCR0 bits 5, 6, 7 (opmask, ZMM_Hi256, Hi16_ZMM)

  /// True when code compiled for `path` can run here.
  [[nodiscard]] constexpr bool supports(isa path) const noexcept {
    switch (path) {
      case isa::scalar: return true;
      case isa::sse2: return sse2;
      case isa::sse4_2: return sse2 && sse4_2;
      case isa::avx2_fma: return os_saves_avx && avx2 && fma;
      case isa::avx512bw:
        return os_saves_avx && os_saves_avx512 && avx2 && fma && avx512f && avx512cd && avx512dq &&
               avx512bw;
    }
    return false;
  }
  /// The fastest path this CPU supports.
  [[nodiscard]] constexpr isa best() const noexcept {
    for (int i = static_cast<int>(isa::avx512bw); i > 0; --i) {
      if (supports(static_cast<isa>(i))) return static_cast<isa>(i);
    }
    return isa::scalar;
  }
};

namespace detail {

inline cpu_features detect_cpu_features() noexcept {
  cpu_features f;
#if SINGLEQUANT_X86
  const cpuid_registers leaf0 = cpuid(0, 0);
  if (leaf0.eax < 1) return f;
  const cpuid_registers leaf1 = cpuid(1, 0);
  f.sse2 = bit(leaf1.edx, 26);
  f.sse4_2 = bit(leaf1.ecx, 20);
  f.fma = bit(leaf1.ecx, 12);
  const bool osxsave = bit(leaf1.ecx, 27);
  const bool avx = bit(leaf1.ecx, 28);
  if (osxsave && avx) {
    const std::uint64_t xcr0 = read_xcr0();
    f.os_saves_avx = (xcr0 & 0x6U) == 0x6U;
    f.os_saves_avx512 = (xcr0 & 0xE6U) == 0xE6U;
  }
  if (leaf0.eax >= 7) {
    const cpuid_registers leaf7 = cpuid(7, 0);
    f.avx2 = bit(leaf7.ebx, 5);
    f.avx512f = bit(leaf7.ebx, 16);
    f.avx512dq = bit(leaf7.ebx, 17);
    f.avx512cd = bit(leaf7.ebx, 28);
    f.avx512bw = bit(leaf7.ebx, 30);
    f.avx512vl = bit(leaf7.ebx, 31);
  }
#endif
  return f;
}

}  // namespace detail

/// The features of the CPU this process runs on (detected once, thread-safe).
[[nodiscard]] inline const cpu_features& host_cpu() noexcept {
  static const cpu_features features = detail::detect_cpu_features();
  return features;
}

SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_ISA_HPP
