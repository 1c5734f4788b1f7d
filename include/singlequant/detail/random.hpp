// singlequant/detail/random.hpp - the library's one pseudo-random generator.
//
// splitmix64 (Steele, Lea, Flood 2014): a fixed, platform-independent sequence, so seeded choices
// (randomised Hadamard signs, reservoir samples) are the same bytes on every machine and compiler.
#ifndef SINGLEQUANT_DETAIL_RANDOM_HPP
#define SINGLEQUANT_DETAIL_RANDOM_HPP

#include <cstdint>
#include <limits>

#include "../config.hpp"

SINGLEQUANT_BEGIN_NAMESPACE
namespace detail {

struct splitmix64 {
  std::uint64_t state = 0;
  /// The next 64-bit output: state += golden gamma, then the splitmix64 finaliser.
  constexpr std::uint64_t next() noexcept {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, bound) (bound > 0), by rejection so it is exactly uniform.
  constexpr std::uint64_t below(std::uint64_t bound) noexcept {
    const std::uint64_t limit = std::numeric_limits<std::uint64_t>::max() -
                                std::numeric_limits<std::uint64_t>::max() % bound;
    std::uint64_t r = next();
    while (r >= limit) r = next();
    return r % bound;
  }
};

}  // namespace detail
SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_DETAIL_RANDOM_HPP
