// Uses every old name docs/changes.md keeps for one minor release. Compiled by the tests
// "deprecation: ..." twice: with SINGLEQUANT_WARN_DEPRECATED=1 every use must warn, without it none
// may (branches written against the old names build under -Werror meanwhile).
#include <singlequant/singlequant.hpp>

#include <cstdint>
#include <vector>

namespace sq = singlequant;

int deprecated_names() {
  sq::quant_config options;  // old name of quant_options
  std::vector<float> x(2 * 8, 0.5f);
  const sq::matrix_view<const float> xv(x.data(), 2, 8);
  const sq::packed_int4 q = sq::quantize_rows_fused(xv, 0.9, sq::int4_grid::full8);
  std::vector<std::uint8_t> codes(2 * 4);
  std::vector<float> scales(2);
  sq::quantize_rows_fused(xv, codes, scales, 0.9, sq::int4_grid::full8);
  sq::givens_sequence<double> g(8);
  sq::fold_into_weights(g, sq::matrix_view<float>(x.data(), 2, 8));
  return static_cast<int>(q.rows()) + static_cast<int>(options.group_size);
}
