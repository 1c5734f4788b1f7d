#include <singlequant/singlequant.hpp>

#include <cstdio>

int main() {
  std::printf("singlequant %s\n", singlequant::version_string.data());
  return 0;
}
