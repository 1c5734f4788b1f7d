// quickstart: views over a small activation matrix and what singlequant computes on them.
// A 4-token x 8-channel activation block with one outlier channel (channel 5), as LLMs have.
#include <singlequant/singlequant.hpp>

#include <cstdio>
#include <vector>

int main() {
  namespace sq = singlequant;
  constexpr std::size_t tokens = 4, channels = 8;
  std::vector<float> storage = {
      0.1f, -0.3f, 0.2f, 0.0f, 0.4f, 31.0f, -0.2f, 0.1f,   //
      -0.2f, 0.1f, 0.3f, 0.2f, -0.1f, -28.5f, 0.3f, 0.0f,  //
      0.3f, 0.2f, -0.4f, 0.1f, 0.2f, 35.25f, 0.1f, -0.3f,  //
      0.0f, -0.1f, 0.1f, -0.2f, 0.3f, -30.0f, -0.4f, 0.2f};
  sq::matrix_view<const float> x(storage, tokens, channels);

  std::printf("singlequant %s, kernels running on %s\n", sq::version_string.data(),
              sq::isa_name(sq::active_isa()).data());
  for (std::size_t t = 0; t < x.rows(); ++t) {
    const auto row = x.row(t);
    const float peak = sq::absmax(row);
    const float energy = sq::dot(row, row);
    // The outlier channel holds almost all of each token's energy: the problem rotations solve.
    std::printf("token %zu: absmax %6.2f, share of energy in channel 5: %5.1f%%\n", t,
                static_cast<double>(peak),
                100.0 * static_cast<double>(row[5] * row[5]) / static_cast<double>(energy));
  }
  return 0;
}
