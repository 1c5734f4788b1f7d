// A build that defines its own namespace macros, as {fmt} allows: the library lands in that inline
// namespace (this translation unit is linked into the unit tests next to the default one).
#define SINGLEQUANT_BEGIN_NAMESPACE \
  namespace singlequant {           \
  inline namespace custom_abi {
#define SINGLEQUANT_END_NAMESPACE \
  }                               \
  }
#include <singlequant/reduce.hpp>

#include <type_traits>
#include <vector>

#include "test_support.hpp"

TEST_CASE("SINGLEQUANT_BEGIN_NAMESPACE can be overridden") {
  static_assert(std::is_same_v<singlequant::error, singlequant::custom_abi::error>);
  const std::vector<float> x{1.0f, -3.0f, 2.0f};
  CHECK(singlequant::custom_abi::absmax(
            singlequant::vector_view<const float>(x.data(), x.size())) == 3.0f);
}
