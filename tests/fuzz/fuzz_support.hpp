// Helpers shared by the libFuzzer targets (tests/fuzz/README in CONTRIBUTING.md, "Fuzzing").
//
// A target catches only the exceptions its parser documents; anything else (std::bad_alloc,
// std::length_error, ...) escapes LLVMFuzzerTestOneInput and libFuzzer reports it as a crash.
// A property that fails calls fuzz_fail(), which aborts with a message: also a crash.
#ifndef SINGLEQUANT_FUZZ_SUPPORT_HPP
#define SINGLEQUANT_FUZZ_SUPPORT_HPP

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>

namespace sq_fuzz {

[[noreturn]] inline void fuzz_fail(const char* what) {
  std::fprintf(stderr, "fuzz property violated: %s\n", what);
  std::abort();
}
inline void require(bool ok, const char* what) {
  if (!ok) fuzz_fail(what);
}

// Little-endian fields from the front of the fuzz input; a missing byte reads as 0.
class input {
 public:
  input(const std::uint8_t* data, std::size_t size) : bytes_(data, size) {}
  std::uint64_t u64() { return take(8); }
  std::uint32_t u32() { return static_cast<std::uint32_t>(take(4)); }
  std::uint8_t u8() { return static_cast<std::uint8_t>(take(1)); }
  [[nodiscard]] std::span<const std::uint8_t> rest() const { return bytes_.subspan(at_); }
  [[nodiscard]] std::size_t remaining() const { return bytes_.size() - at_; }
  // The next n bytes (fewer if the input ends first).
  std::span<const std::uint8_t> bytes(std::size_t n) {
    const std::size_t count = n < remaining() ? n : remaining();
    const auto out = bytes_.subspan(at_, count);
    at_ += count;
    return out;
  }

 private:
  std::uint64_t take(int width) {
    std::uint64_t v = 0;
    for (int k = 0; k < width && at_ < bytes_.size(); ++k, ++at_)
      v |= std::uint64_t{bytes_[at_]} << (8 * k);
    return v;
  }
  std::span<const std::uint8_t> bytes_;
  std::size_t at_ = 0;
};

// memcmp, but n == 0 compares equal without touching the pointers (they may be null).
inline bool same_bits(const void* a, const void* b, std::size_t n) {
  return n == 0 || std::memcmp(a, b, n) == 0;
}

}  // namespace sq_fuzz

#endif  // SINGLEQUANT_FUZZ_SUPPORT_HPP
