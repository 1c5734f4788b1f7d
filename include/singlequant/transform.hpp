// singlequant/transform.hpp - compatibility header: the site transform, its calibrator and the
// metrics, as before the split by concern. New code names the piece it needs:
//   site_transform.hpp  the online transform (apply, fold, serialise / deserialize)
//   calibrator.hpp      calibrator, build_site_transform, transform_options, single_pass_quantize
//   metrics.hpp         measure_activations, measure_w4a4_layer
#ifndef SINGLEQUANT_TRANSFORM_HPP
#define SINGLEQUANT_TRANSFORM_HPP

#include "calibrator.hpp"
#include "metrics.hpp"
#include "site_transform.hpp"

#endif  // SINGLEQUANT_TRANSFORM_HPP
