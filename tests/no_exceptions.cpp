// Built with -fno-exceptions: a violated precondition prints "singlequant::<function>: <message>"
// to stderr and aborts. "good" exercises the happy path; "bad" triggers a shape error.
#include <singlequant/singlequant.hpp>

#include <cstdio>
#include <cstring>
#include <vector>

int main(int argc, char** argv) {
  static_assert(SINGLEQUANT_USE_EXCEPTIONS == 0, "this test must be built with -fno-exceptions");
  if (argc < 2) return 2;
  std::vector<float> x{1.f, -2.f, 3.f}, y{1.f, 1.f, 1.f}, z{1.f, 2.f};
  if (std::strcmp(argv[1], "good") == 0) {
    const float d = singlequant::dot(x, y);
    std::printf("dot = %g, absmax = %g\n", static_cast<double>(d),
                static_cast<double>(singlequant::absmax(x)));
    return d == 2.f ? 0 : 1;
  }
  const float d = singlequant::dot(x, z);  // sizes 3 vs 2: aborts
  std::printf("not reached %g\n", static_cast<double>(d));
  return 0;
}
