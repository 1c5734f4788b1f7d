// singlequant/singlequant.hpp - the umbrella header: everything singlequant offers.
#ifndef SINGLEQUANT_SINGLEQUANT_HPP
#define SINGLEQUANT_SINGLEQUANT_HPP

#include "angles.hpp"
#include "art.hpp"
#include "config.hpp"
#include "givens.hpp"
#include "gptq.hpp"
#include "hadamard.hpp"
#include "int4.hpp"
#include "int4_gemm.hpp"
#include "kronecker.hpp"
#include "online_quant.hpp"
#include "quant.hpp"
#include "reduce.hpp"
#include "simd.hpp"
#include "stats.hpp"
#include "transform.hpp"
#include "urt.hpp"
#include "view.hpp"

#endif  // SINGLEQUANT_SINGLEQUANT_HPP
