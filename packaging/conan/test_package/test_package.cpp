#include <singlequant/singlequant.hpp>

#include <cstdio>
#include <vector>

int main() {
  std::vector<float> x{3.f, -4.f};
  const float norm2 = singlequant::dot(x, x);
  std::printf("singlequant %s (xsimd %d.%d.%d): |x|^2 = %g on %s\n",
              singlequant::version_string.data(), XSIMD_VERSION_MAJOR, XSIMD_VERSION_MINOR,
              XSIMD_VERSION_PATCH, static_cast<double>(norm2),
              singlequant::isa_name(singlequant::active_isa()).data());
  return norm2 == 25.f ? 0 : 1;
}
