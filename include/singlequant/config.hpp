// singlequant/config.hpp - version, namespace, configuration macros and the error path.
//
// Every public function checks its arguments and reports a violation through detail::fail(), which
// throws singlequant::error when exceptions are enabled and otherwise prints the message and aborts
// (or calls a user handler installed with SINGLEQUANT_ERROR_HANDLER).
#ifndef SINGLEQUANT_CONFIG_HPP
#define SINGLEQUANT_CONFIG_HPP

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

// The version is CMakeLists.txt's project(VERSION); the "version: every copy agrees" test checks
// these macros, packaging/vcpkg/singlequant/vcpkg.json and packaging/conan/conanfile.py against it.
#define SINGLEQUANT_VERSION_MAJOR 0
#define SINGLEQUANT_VERSION_MINOR 1
#define SINGLEQUANT_VERSION_PATCH 0
// Encoded as MAJOR * 10000 + MINOR * 100 + PATCH for easy comparison in #if.
#define SINGLEQUANT_VERSION \
  (SINGLEQUANT_VERSION_MAJOR * 10000 + SINGLEQUANT_VERSION_MINOR * 100 + SINGLEQUANT_VERSION_PATCH)

#define SINGLEQUANT_PP_STRING_IMPL(x) #x
#define SINGLEQUANT_PP_STRING(x) SINGLEQUANT_PP_STRING_IMPL(x)
#define SINGLEQUANT_PP_CAT4_IMPL(a, b, c, d) a##b##c##d
#define SINGLEQUANT_PP_CAT4(a, b, c, d) SINGLEQUANT_PP_CAT4_IMPL(a, b, c, d)
#define SINGLEQUANT_PP_CAT2_IMPL(a, b) a##b
#define SINGLEQUANT_PP_CAT2(a, b) SINGLEQUANT_PP_CAT2_IMPL(a, b)

// The inline namespace names the ABI: v<major>_<minor> while the major version is 0 (every 0.x
// minor may break the API), v<major> from 1.0 on. Two such versions can then live in one binary
// without ODR clashes. As in {fmt}, a build may define SINGLEQUANT_BEGIN_NAMESPACE and
// SINGLEQUANT_END_NAMESPACE itself (both, before any singlequant header), e.g. to add a
// project-specific namespace; the outer namespace must stay `singlequant`.
#if SINGLEQUANT_VERSION_MAJOR == 0
#  define SINGLEQUANT_ABI_NAMESPACE \
    SINGLEQUANT_PP_CAT4(v, SINGLEQUANT_VERSION_MAJOR, _, SINGLEQUANT_VERSION_MINOR)
#else
#  define SINGLEQUANT_ABI_NAMESPACE SINGLEQUANT_PP_CAT2(v, SINGLEQUANT_VERSION_MAJOR)
#endif
#if defined(SINGLEQUANT_BEGIN_NAMESPACE) != defined(SINGLEQUANT_END_NAMESPACE)
#  error "define both SINGLEQUANT_BEGIN_NAMESPACE and SINGLEQUANT_END_NAMESPACE, or neither"
#endif
#ifndef SINGLEQUANT_BEGIN_NAMESPACE
#  define SINGLEQUANT_BEGIN_NAMESPACE \
    namespace singlequant {           \
    inline namespace SINGLEQUANT_ABI_NAMESPACE {
#  define SINGLEQUANT_END_NAMESPACE \
    }                               \
    }
#endif

// Exceptions: auto-detected, overridable by defining SINGLEQUANT_USE_EXCEPTIONS to 0 or 1.
#ifdef SINGLEQUANT_USE_EXCEPTIONS
// Use the provided definition.
#elif defined(__cpp_exceptions) || defined(__EXCEPTIONS) || defined(_CPPUNWIND)
#  define SINGLEQUANT_USE_EXCEPTIONS 1
#else
#  define SINGLEQUANT_USE_EXCEPTIONS 0
#endif

#if SINGLEQUANT_USE_EXCEPTIONS
#  include <new>
#  include <stdexcept>
#endif

// SINGLEQUANT_ASSERT(cond, msg): internal invariant check (not argument validation, which is always
// on). Compiled out under NDEBUG; define it before including any singlequant header to replace it.
#ifndef SINGLEQUANT_ASSERT
#  ifdef NDEBUG
#    define SINGLEQUANT_ASSERT(cond, msg) static_cast<void>(sizeof(static_cast<bool>(cond)))
#  else
#    define SINGLEQUANT_ASSERT(cond, msg)                                                      \
      ((cond) ? static_cast<void>(0)                                                           \
              : ::singlequant::detail::assertion_failed(#cond, msg, __FILE__, __LINE__))
#  endif
#endif

#if defined(__GNUC__) || defined(__clang__)
#  define SINGLEQUANT_INLINE inline __attribute__((always_inline))
#  define SINGLEQUANT_RESTRICT __restrict__
#else
#  define SINGLEQUANT_INLINE inline
#  define SINGLEQUANT_RESTRICT
#endif

// SINGLEQUANT_UNROLL before a loop: unroll it up to 16 times (fully for the short fixed-count
// per-channel and per-register loops, so their accumulators stay in registers). Defined here once:
// kernels in several detail headers use it, and a second definition is -Wmacro-redefined in clang.
#if defined(__clang__)
#  define SINGLEQUANT_UNROLL _Pragma("unroll 16")
#elif defined(__GNUC__)
#  define SINGLEQUANT_UNROLL _Pragma("GCC unroll 16")
#else
#  define SINGLEQUANT_UNROLL
#endif

// Marks an old public name kept for one minor release after a rename (CONTRIBUTING.md, API
// conventions; the list is docs/changes.md). Silent by default while code written against the old
// names lands (-Werror builds would otherwise fail); define SINGLEQUANT_WARN_DEPRECATED to 1 to get
// [[deprecated]] warnings at every use.
#if defined(SINGLEQUANT_WARN_DEPRECATED) && SINGLEQUANT_WARN_DEPRECATED
#  define SINGLEQUANT_DEPRECATED(msg) [[deprecated(msg)]]
#else
#  define SINGLEQUANT_DEPRECATED(msg)
#endif

SINGLEQUANT_BEGIN_NAMESPACE

/// The element types the library computes in: exactly float or double (no cv, no long double).
/// The one constraint of every function templated on its element type.
template <class T>
concept float_or_double = std::is_same_v<T, float> || std::is_same_v<T, double>;

/// Library version as a string, e.g. "0.1.0".
inline constexpr std::string_view version_string =
    SINGLEQUANT_PP_STRING(SINGLEQUANT_VERSION_MAJOR) "." SINGLEQUANT_PP_STRING(
        SINGLEQUANT_VERSION_MINOR) "." SINGLEQUANT_PP_STRING(SINGLEQUANT_VERSION_PATCH);

#if SINGLEQUANT_USE_EXCEPTIONS
/// The one exception type singlequant throws: an argument or shape violation of a public function.
/// what() reads "singlequant::<function>: <what is wrong, with the sizes>".
class error : public std::invalid_argument {
 public:
  error(std::string_view function, const std::string& message)
      : std::invalid_argument(std::string("singlequant::") + std::string(function) + ": " + message),
        function_(function) {}
  /// The public function that detected the violation (without the namespace).
  [[nodiscard]] std::string_view function() const noexcept { return function_; }

 private:
  std::string_view function_;  // always a string literal
};
#endif

namespace detail {

template <class T>
void append_piece(std::string& out, const T& value) {
  if constexpr (std::is_same_v<T, bool>) {
    out += value ? "true" : "false";
  } else if constexpr (std::is_integral_v<T>) {
    out += std::to_string(value);
  } else if constexpr (std::is_floating_point_v<T>) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.9g", static_cast<double>(value));
    out += buffer;
  } else {
    out += std::string_view(value);
  }
}

/// Concatenates strings and numbers into one message: message("n = ", n, " is odd").
template <class... Pieces>
std::string message(const Pieces&... pieces) {
  std::string out;
  (append_piece(out, pieces), ...);
  return out;
}

/// Reports an argument violation of public function `function` (never returns).
[[noreturn]] inline void fail(std::string_view function, const std::string& what) {
#if defined(SINGLEQUANT_ERROR_HANDLER)
  // User hook: void handler(std::string_view function, const std::string& message); must not return.
  SINGLEQUANT_ERROR_HANDLER(function, what);
  std::abort();
#elif SINGLEQUANT_USE_EXCEPTIONS
  throw error(function, what);
#else
  std::fprintf(stderr, "singlequant::%.*s: %s\n", static_cast<int>(function.size()), function.data(),
               what.c_str());
  std::fflush(stderr);
  std::abort();
#endif
}

/// Fails as `function` unless `value` is one of the enumerators first..last of its enum (an enum
/// class whose enumerators are consecutive): a value cast from an integer is never used as some other.
template <class E>
  requires std::is_enum_v<E>
void check_enum(std::string_view function, std::string_view what, E value, E last);

/// check(cond, "fwht", "length ", n, " is not a power of two"): fail with the pieces if !cond.
/// The message is only built on failure, so checks cost a branch on the good path.
template <class... Pieces>
SINGLEQUANT_INLINE void check(bool condition, std::string_view function, const Pieces&... pieces) {
  if (!condition) [[unlikely]] {
    fail(function, message(pieces...));
  }
}

template <class E>
  requires std::is_enum_v<E>
void check_enum(std::string_view function, std::string_view what, E value, E last) {
  const auto v = static_cast<long long>(value);
  check(v >= 0 && v <= static_cast<long long>(last), function, what, " has no enumerator of value ", v);
}

[[noreturn]] inline void assertion_failed(const char* condition, const char* what, const char* file,
                                          int line) {
  std::fprintf(stderr, "singlequant: internal assertion '%s' failed (%s) at %s:%d\n", condition, what,
               file, line);
  std::fflush(stderr);
  std::abort();
}

/// a * b with an overflow check, for sizes computed from user extents.
[[nodiscard]] inline bool multiply_overflows(std::size_t a, std::size_t b, std::size_t& product) {
  product = a * b;
  return a != 0 && product / a != b;
}

/// a + b with an overflow check, for sizes computed from user extents.
[[nodiscard]] inline bool add_overflows(std::size_t a, std::size_t b, std::size_t& sum) {
  sum = a + b;
  return sum < a;
}

}  // namespace detail

/// The largest single allocation (in bytes) a public function makes from sizes given by a caller or
/// read from a file: 1 TiB. Larger requests, and requests the allocator refuses, are reported as
/// errors of that function (never std::bad_alloc or std::length_error).
inline constexpr std::size_t max_allocation_bytes = std::size_t{1} << 40;

/// The widest site (channels of one linear layer's input) statistics and transforms accept: 2^20,
/// far beyond any LLM width. It bounds what a few bytes of a file (or one size_t) can make the
/// library allocate before any data arrives.
inline constexpr std::size_t max_site_width = std::size_t{1} << 20;

namespace detail {

/// Fails as `function` unless `count` elements of `element_bytes` each fit max_allocation_bytes.
inline void check_allocation(std::string_view function, std::string_view what, std::size_t count,
                             std::size_t element_bytes) {
  std::size_t bytes = 0;
  check(!multiply_overflows(count, element_bytes, bytes) && bytes <= max_allocation_bytes, function,
        what, ": ", count, " elements of ", element_bytes, " bytes exceed the ", max_allocation_bytes,
        "-byte allocation limit");
}

/// v.assign(count, value) for a std::vector (any allocator), reported as an error of `function`
/// (naming `what` and the size) when the size exceeds max_allocation_bytes or the allocator refuses.
template <class Vector>
void checked_assign(std::string_view function, std::string_view what, Vector& v, std::size_t count,
                    const typename Vector::value_type& value = {}) {
  using T = typename Vector::value_type;
  check_allocation(function, what, count, sizeof(T));
#if SINGLEQUANT_USE_EXCEPTIONS
  try {
    v.assign(count, value);
  } catch (const std::bad_alloc&) {
    fail(function, message(what, ": cannot allocate ", count, " elements of ", sizeof(T), " bytes"));
  }
#else
  v.assign(count, value);
#endif
}

/// std::vector<T>(count, value) through checked_assign.
template <class T>
[[nodiscard]] std::vector<T> checked_vector(std::string_view function, std::string_view what,
                                            std::size_t count, const T& value = T{}) {
  std::vector<T> v;
  checked_assign(function, what, v, count, value);
  return v;
}

}  // namespace detail

SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_CONFIG_HPP
