// singlequant/singlequant.hpp - the umbrella header: everything singlequant offers.
#ifndef SINGLEQUANT_SINGLEQUANT_HPP
#define SINGLEQUANT_SINGLEQUANT_HPP

#include "angles.hpp"
#include "art.hpp"
#include "calibrator.hpp"
#include "config.hpp"
#include "fp16.hpp"
#include "givens.hpp"
#include "gptq.hpp"
#include "hadamard.hpp"
#include "int4.hpp"
#include "int4_gemm.hpp"
#include "interop/ggml.hpp"
#include "interop/gptq.hpp"
#include "kronecker.hpp"
#include "metrics.hpp"
#include "online_quant.hpp"
#include "quant.hpp"
#include "reduce.hpp"
#include "simd.hpp"
#include "site_transform.hpp"
#include "stats.hpp"
#include "transform.hpp"
#include "urt.hpp"
#include "view.hpp"

#endif  // SINGLEQUANT_SINGLEQUANT_HPP
