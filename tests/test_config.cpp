#include <singlequant/config.hpp>

#include <string>

#include "test_support.hpp"

TEST_CASE("version macros agree with the version string") {
  CHECK(SINGLEQUANT_VERSION == SINGLEQUANT_VERSION_MAJOR * 10000 + SINGLEQUANT_VERSION_MINOR * 100 +
                                   SINGLEQUANT_VERSION_PATCH);
  const std::string expected = std::to_string(SINGLEQUANT_VERSION_MAJOR) + "." +
                               std::to_string(SINGLEQUANT_VERSION_MINOR) + "." +
                               std::to_string(SINGLEQUANT_VERSION_PATCH);
  CHECK(singlequant::version_string == expected);
}

TEST_CASE("the versioned inline namespace is transparent and follows major.minor") {
  static_assert(std::is_same_v<singlequant::error, singlequant::SINGLEQUANT_ABI_NAMESPACE::error>);
#if SINGLEQUANT_VERSION_MAJOR == 0 && SINGLEQUANT_VERSION_MINOR == 1
  static_assert(std::is_same_v<singlequant::error, singlequant::v0_1::error>);
#endif
  CHECK(std::string(SINGLEQUANT_PP_STRING(SINGLEQUANT_ABI_NAMESPACE)) ==
        (SINGLEQUANT_VERSION_MAJOR == 0 ? "v0_" + std::to_string(SINGLEQUANT_VERSION_MINOR)
                                        : "v" + std::to_string(SINGLEQUANT_VERSION_MAJOR)));
}

TEST_CASE("check() builds a message naming the function and the sizes") {
  try {
    singlequant::detail::check(false, "fwht", "length ", std::size_t{12}, " is not a power of two (",
                               1.5, ")");
    FAIL("check(false) did not throw");
  } catch (const singlequant::error& e) {
    CHECK(std::string(e.what()) == "singlequant::fwht: length 12 is not a power of two (1.5)");
    CHECK(e.function() == "fwht");
  }
  CHECK_NOTHROW(singlequant::detail::check(true, "fwht", "never shown"));
}

TEST_CASE("singlequant::error is a std::invalid_argument") {
  CHECK_THROWS_AS(singlequant::detail::fail("f", "m"), std::invalid_argument);
}

TEST_CASE("multiply_overflows detects size_t overflow") {
  std::size_t product = 0;
  CHECK_FALSE(singlequant::detail::multiply_overflows(1000, 1000, product));
  CHECK(product == 1000000);
  CHECK(singlequant::detail::multiply_overflows(std::size_t{1} << 40, std::size_t{1} << 40, product));
  CHECK_FALSE(singlequant::detail::multiply_overflows(0, ~std::size_t{0}, product));
}
