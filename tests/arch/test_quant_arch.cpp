// Every quant_kernel member on this ISA against the scalar path: identical bytes and bits.
#include <singlequant/detail/quant_kernels.hpp>
#include <singlequant/fp16.hpp>
#include <singlequant/int4.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "../test_support.hpp"
#include "arch_test.hpp"

using sq_test::scalar_arch;
using sq_test::test_arch;
using simd_kernel = singlequant::detail::quant_kernel<test_arch>;
using scalar_kernel = singlequant::detail::quant_kernel<scalar_arch>;

namespace {
template <class T>
std::vector<T> awkward_input(std::size_t n, std::uint64_t seed, int variant) {
  auto x = sq_test::random_normal<T>(n, seed, 2.0);
  if (n > 8 && variant == 1) x[n / 3] = std::numeric_limits<T>::quiet_NaN();
  if (n > 8 && variant == 2) x[n - 2] = -std::numeric_limits<T>::infinity();
  if (n > 8 && variant == 3) x[1] = T(0.5) + T(1) / T(2);  // exact tie material after scaling
  return x;
}
constexpr std::size_t lengths[] = {0, 1, 3, 16, 31, 64, 127, 128, 129, 255, 1000, 2051, 4096};
}  // namespace

TEST_CASE_TEMPLATE("quant_kernel::range: SIMD equals scalar", T, float, double) {
  for (std::size_t n : lengths)
    for (int variant = 0; variant < 3; ++variant) {
      const auto x = awkward_input<T>(n, n + 1, variant);
      const auto a = simd_kernel::range(x.data(), n), b = scalar_kernel::range(x.data(), n);
      CHECK(a.lo == b.lo);
      CHECK(a.hi == b.hi);
      CHECK(a.nan_count == b.nan_count);
      CHECK(a.inf_count == b.inf_count);
    }
}

TEST_CASE("quant_kernel::quantize_packed / quantize_codes (float): identical bytes") {
  for (std::size_t n : lengths)
    for (int variant = 0; variant < 4; ++variant)
      for (int zero : {0, -3, 5}) {
        const auto x = awkward_input<float>(n, 3 * n + 7, variant);
        // Ties: scale 0.25 makes values k / 8 land on half-integers.
        std::vector<float> ties(x);
        for (std::size_t i = 0; i < n; i += 3) ties[i] = static_cast<float>(static_cast<int>(i % 17) - 8) * 0.125f;
        for (const std::vector<float>* input : std::initializer_list<const std::vector<float>*>{&x, &ties}) {
          std::vector<std::uint8_t> a(singlequant::row_bytes(n) + 1, 0xEE), b(a);
          simd_kernel::quantize_packed(input->data(), n, 4.0f, zero, -8, 7, a.data());
          scalar_kernel::quantize_packed(input->data(), n, 4.0f, zero, -8, 7, b.data());
          REQUIRE(a == b);
          CHECK(a.back() == 0xEE);
          std::vector<std::int8_t> c(n + 1, 99), d(c);
          simd_kernel::quantize_codes(input->data(), n, 4.0f, zero, -7, 7, c.data());
          scalar_kernel::quantize_codes(input->data(), n, 4.0f, zero, -7, 7, d.data());
          REQUIRE(c == d);
        }
      }
}

TEST_CASE("quant_kernel::quantize_codes (double): identical codes") {
  for (std::size_t n : lengths) {
    const auto x = awkward_input<double>(n, n, 1);
    std::vector<std::int8_t> c(n), d(n);
    simd_kernel::quantize_codes(x.data(), n, 3.0, 2, -8, 7, c.data());
    scalar_kernel::quantize_codes(x.data(), n, 3.0, 2, -8, 7, d.data());
    CHECK(c == d);
  }
}

TEST_CASE_TEMPLATE("quant_kernel::clip_error: identical bits (fixed 16-lane order)", T, float, double) {
  for (std::size_t n : lengths)
    for (int variant = 0; variant < 3; ++variant) {
      const auto x = awkward_input<T>(n, 5 * n + 1, variant);
      for (T inv : {T(1.7), T(3.1)}) {
        const double a = simd_kernel::clip_error(x.data(), n, inv, 1, -8, 7);
        const double b = scalar_kernel::clip_error(x.data(), n, inv, 1, -8, 7);
        CHECK(std::memcmp(&a, &b, sizeof a) == 0);
      }
    }
}

TEST_CASE("quant_kernel::clip_screen: within clip_screen_gamma of the exact sum on every path") {
  for (std::size_t n : lengths)
    for (const int variant : {0, 3}) {  // finite inputs only (the screen's contract)
      const auto x = awkward_input<float>(n, 7 * n + 3, variant);
      for (const float inv : {1.7f, 3.1f, 0.02f})
        for (const auto [zero, qmin, qmax] : {std::array{0, -7, 7}, std::array{0, -8, 7}, std::array{3, -8, 7}}) {
          double exact = 0;  // the float u are the same on every path; their squares summed in double
          const auto lo = static_cast<float>(qmin - zero), hi = static_cast<float>(qmax - zero);
          for (std::size_t i = 0; i < n; ++i) {
            const float y = x[i] * inv;
            const auto u = static_cast<double>(y - std::nearbyint(std::min(std::max(y, lo), hi)));
            exact += u * u;
          }
          const double bound = singlequant::detail::clip_screen_gamma(n) * exact / 2;  // without the spare factor
          CHECK(std::fabs(simd_kernel::clip_screen(x.data(), n, inv, zero, qmin, qmax) - exact) <= bound);
          CHECK(std::fabs(scalar_kernel::clip_screen(x.data(), n, inv, zero, qmin, qmax) - exact) <= bound);
        }
    }
}

TEST_CASE_TEMPLATE("quant_kernel per-column members: identical results", T, float, double) {
  const std::size_t n = 37;
  const auto x = awkward_input<T>(n, 4, 1);
  std::vector<T> inv(n);
  std::vector<std::int8_t> zero(n);
  for (std::size_t j = 0; j < n; ++j) {
    inv[j] = T(1) + static_cast<T>(j) / T(8);
    zero[j] = static_cast<std::int8_t>(static_cast<int>(j % 5) - 2);
  }
  std::vector<T> lo_a(n, T(0)), hi_a(n, T(0)), lo_b(n, T(0)), hi_b(n, T(0));
  std::size_t count_a[2] = {0, 0}, count_b[2] = {0, 0};
  simd_kernel::column_range(x.data(), n, lo_a.data(), hi_a.data(), count_a);
  scalar_kernel::column_range(x.data(), n, lo_b.data(), hi_b.data(), count_b);
  CHECK(lo_a == lo_b);
  CHECK(hi_a == hi_b);
  CHECK(count_a[0] == count_b[0]);
  std::vector<std::int8_t> c(n), d(n);
  simd_kernel::quantize_columns(x.data(), n, inv.data(), zero.data(), -8, 7, c.data());
  scalar_kernel::quantize_columns(x.data(), n, inv.data(), zero.data(), -8, 7, d.data());
  CHECK(c == d);
  std::vector<double> e(n, 0.0), f(n, 0.0);
  simd_kernel::clip_error_columns(x.data(), n, inv.data(), zero.data(), -7, 7, e.data());
  scalar_kernel::clip_error_columns(x.data(), n, inv.data(), zero.data(), -7, 7, f.data());
  CHECK(std::memcmp(e.data(), f.data(), n * sizeof(double)) == 0);
}

TEST_CASE("quant_kernel::quantize_rows_fused: identical codes and scales, streaming or not") {
  for (std::size_t cols : {1u, 5u, 64u, 128u, 200u, 4096u})
    for (int qmin : {-7, -8})
      for (bool stream : {false, true}) {
        const std::size_t rows = 4, stride = cols + 3;
        auto x = awkward_input<float>(rows * stride, cols, 0);
        if (cols > 8) {
          x[stride + 2] = std::numeric_limits<float>::quiet_NaN();
          x[2 * stride + 1] = std::numeric_limits<float>::infinity();
        }
        for (std::size_t j = 0; j < cols; ++j) x[3 * stride + j] = 0.0f;  // a zero row
        const std::size_t out_stride = singlequant::row_bytes(cols);
        // 64-byte aligned destinations, so the streaming path really streams.
        std::vector<std::uint8_t> a_store(rows * out_stride + 128), b_store(a_store.size());
        auto align = [](std::vector<std::uint8_t>& v) {
          const auto address = reinterpret_cast<std::uintptr_t>(v.data());
          return v.data() + (64 - address % 64) % 64;
        };
        std::uint8_t* a = align(a_store);
        std::uint8_t* b = align(b_store);
        std::vector<float> sa(rows), sb(rows);
        std::size_t ca[2] = {0, 0}, cb[2] = {0, 0};
        simd_kernel::quantize_rows_fused(x.data(), rows, cols, stride, 0.9, qmin, a, out_stride, sa.data(), ca, stream);
        scalar_kernel::quantize_rows_fused(x.data(), rows, cols, stride, 0.9, qmin, b, out_stride, sb.data(), cb, false);
        REQUIRE(std::memcmp(a, b, rows * out_stride) == 0);
        CHECK(sa == sb);
        CHECK(ca[0] == cb[0]);
        CHECK(ca[1] == cb[1]);
      }
}

TEST_CASE("quant_kernel::dequantize: identical floats and doubles, every group layout") {
  const std::size_t n = 1031;
  std::vector<std::uint8_t> codes(singlequant::row_bytes(n));
  for (std::size_t k = 0; k < codes.size(); ++k) codes[k] = static_cast<std::uint8_t>(k * 37 + 11);
  std::vector<float> scales(n);
  std::vector<std::int8_t> zeros(n);
  for (std::size_t g = 0; g < n; ++g) {
    scales[g] = 0.01f * static_cast<float>(g % 13) - 0.05f;
    zeros[g] = static_cast<std::int8_t>(static_cast<int>(g % 7) - 3);
  }
  for (std::size_t group : {std::size_t{1}, std::size_t{3}, std::size_t{32}, n})
    for (bool with_zeros : {false, true})
      for (std::size_t offset : {2u, 3u}) {  // even / odd peel to a 64-byte boundary
        const bool stream = true;
        std::vector<float> a(n + 16, -1.0f), b(a);
        simd_kernel::dequantize(codes.data(), n, group, scales.data(), with_zeros ? zeros.data() : nullptr,
                                a.data() + offset, stream);
        scalar_kernel::dequantize(codes.data(), n, group, scales.data(), with_zeros ? zeros.data() : nullptr,
                                  b.data() + offset, false);
        REQUIRE(a == b);
        std::vector<double> c(n), d(n);
        simd_kernel::dequantize(codes.data(), n, group, scales.data(), with_zeros ? zeros.data() : nullptr,
                                c.data(), stream);
        scalar_kernel::dequantize(codes.data(), n, group, scales.data(), with_zeros ? zeros.data() : nullptr,
                                  d.data(), false);
        REQUIRE(c == d);
      }
}

namespace {
// quantize()'s per-group decisions before the fused row kernel, from the scalar kernel's pieces:
// range -> make_params -> (clip search: least s^2 * clip_error, ties the first) -> packed codes.
void reference_groups(const float* x, std::size_t n, std::size_t group, const std::vector<double>& ratios,
                      int qmin, int qmax, bool asymmetric, std::uint8_t* out, float* scales, std::int8_t* zeros,
                      singlequant::detail::group_counts& counts) {
  using namespace singlequant::detail;
  for (std::size_t g = 0; g * group < n; ++g) {
    const float* p = x + g * group;
    const auto r = scalar_kernel::range(p, group);
    counts.nan_count += r.nan_count;
    counts.inf_count += r.inf_count;
    quant_params best = make_params(r.lo, r.hi, ratios[0], qmin, qmax, asymmetric);
    double best_ratio = ratios[0];
    if (ratios.size() > 1 && best.scale != 0.0f) {
      double best_error = std::numeric_limits<double>::infinity();
      for (const double ratio : ratios) {
        const quant_params c = make_params(r.lo, r.hi, ratio, qmin, qmax, asymmetric);
        if (c.scale == 0.0f) continue;
        const double e = scalar_kernel::clip_error(p, group, inverse_scale<float, void>(c.scale), c.zero, qmin, qmax) *
                         (static_cast<double>(c.scale) * static_cast<double>(c.scale));
        if (e < best_error) {
          best_error = e;
          best = c;
          best_ratio = ratio;
        }
      }
    }
    counts.zero_scale_count += best.scale == 0.0f ? 1u : 0u;
    counts.clip_ratio_sum += best_ratio;
    ++counts.scale_count;
    scales[g] = best.scale;
    if (zeros != nullptr) zeros[g] = static_cast<std::int8_t>(best.zero);
    scalar_kernel::quantize_packed(p, group, inverse_scale<float, void>(best.scale), best.zero, qmin, qmax,
                                   out + g * group / 2);
  }
}
}  // namespace

// Per-group quantisation of a row (group 2..2048 incl. 32 and 128 and groups above the kernel's
// 1024-float block, both grids, symmetric and asymmetric, with and without the clip search,
// NaN / Inf / all-zero groups): the same scales, zero points, counts and bytes as the
// group-by-group reference, on every ISA.
TEST_CASE("quant_kernel::quantize_groups: the per-group reference's scales and bytes") {
  const std::vector<double> search = [] {
    std::vector<double> r;
    for (int k = 0; k <= 50; ++k) r.push_back(1.0 - 0.01 * k);
    return r;
  }();
  for (std::size_t group : {2u, 6u, 16u, 32u, 48u, 64u, 128u, 256u, 1030u, 2048u})
    for (std::size_t groups : {1u, 3u, 40u})
      for (int variant = 0; variant < 5; ++variant)
        for (int config = 0; config < 6; ++config) {
          const std::size_t n = group * groups;
          auto x = awkward_input<float>(n, n + group + static_cast<std::size_t>(variant), variant % 4);
          if (variant == 4)  // an all-zero group and a tiny one
            for (std::size_t i = 0; i < group && i < n; ++i) {
              x[i] = 0.0f;
              if (n > group) x[group + i] = 1e-39f;
            }
          const bool full8 = config % 2 == 1, asymmetric = config / 2 == 2, mse = config / 2 == 1;
          const int qmin = asymmetric ? -8 : full8 ? -8 : -7, qmax = 7;
          const std::vector<double> ratios = mse ? search : std::vector<double>{config == 0 ? 0.9 : 1.0};
          std::vector<std::uint8_t> a(n / 2 + 1, 0xEE), b(a);
          std::vector<float> sa(groups, -1.0f), sb(sa);
          std::vector<std::int8_t> za(groups, 99), zb(za);
          singlequant::detail::group_counts ca, cb;
          simd_kernel::quantize_groups(x.data(), n, group, ratios.data(), ratios.size(), qmin, qmax, asymmetric,
                                       a.data(), sa.data(), asymmetric ? za.data() : nullptr, ca);
          reference_groups(x.data(), n, group, ratios, qmin, qmax, asymmetric, b.data(), sb.data(),
                           asymmetric ? zb.data() : nullptr, cb);
          INFO("group " << group << " x " << groups << " variant " << variant << " config " << config);
          REQUIRE(a == b);
          CHECK(std::memcmp(sa.data(), sb.data(), groups * sizeof(float)) == 0);
          CHECK(za == zb);
          CHECK(ca.nan_count == cb.nan_count);
          CHECK(ca.inf_count == cb.inf_count);
          CHECK(ca.zero_scale_count == cb.zero_scale_count);
          CHECK(ca.scale_count == cb.scale_count);
          CHECK(ca.clip_ratio_sum == cb.clip_ratio_sum);
        }
}

// The Q4_0 export kernel: block g's qs are the group-32 codes of quantize_groups reordered as
// to_q4_0 does (q4_0_qs_from_packed), its scale the same float, with the same counts, on every
// ISA; d is float_to_half_bits(scale) where written, and when the kernel says it wrote them all
// (else the caller converts and checks). Rows of 1..40 groups (the SIMD path takes 16 at a time),
// NaN / Inf / zero / tiny groups, groups whose largest magnitude occurs with both signs, a group
// whose scale does not fit fp16 (that step leaves d to the caller).
TEST_CASE("quant_kernel::quantize_q4_0: quantize_groups' codes and scales as Q4_0 blocks") {
  const std::vector<double> search = [] {
    std::vector<double> r;
    for (int k = 0; k <= 50; ++k) r.push_back(1.0 - 0.01 * k);
    return r;
  }();
  for (std::size_t groups : {1u, 15u, 16u, 17u, 40u})
    for (int variant = 0; variant < 7; ++variant)
      for (int config = 0; config < 4; ++config) {
        const std::size_t n = 32 * groups;
        auto x = awkward_input<float>(n, n + static_cast<std::size_t>(variant), variant % 4);
        if (variant == 4)
          for (std::size_t i = 0; i < 32; ++i) {
            x[i] = 0.0f;
            if (n > 32) x[32 + i] = 1e-39f;
          }
        if (variant == 5)  // +-m in every group: full8 must pick the negative one
          for (std::size_t g = 0; g < groups; ++g) {
            x[32 * g + 3] = 9.0f;
            x[32 * g + 20] = -9.0f;
          }
        if (variant == 6) x[n - 7] = 1e6f;  // scale beyond fp16 (65504)
        const bool full8 = config % 2 == 1, mse = config / 2 == 1;
        const int qmin = full8 ? -8 : -7;
        const std::vector<double> ratios = mse ? search : std::vector<double>{config == 0 ? 0.9 : 1.0};
        std::vector<std::uint8_t> blocks(18 * groups, 0xEE), packed(n / 2, 0);
        std::vector<float> sa(groups, -1.0f), sb(sa);
        singlequant::detail::group_counts ca, cb;
        const bool all_d =
            simd_kernel::quantize_q4_0(x.data(), n, ratios.data(), ratios.size(), qmin, blocks.data(), sa.data(), ca);
        scalar_kernel::quantize_groups(x.data(), n, 32, ratios.data(), ratios.size(), qmin, 7, false, packed.data(),
                                       sb.data(), nullptr, cb);
        INFO("groups " << groups << " variant " << variant << " config " << config);
        for (std::size_t g = 0; g < groups; ++g) {
          std::uint8_t qs[16];
          singlequant::detail::q4_0_qs_from_packed(packed.data() + 16 * g, qs);
          REQUIRE(std::memcmp(blocks.data() + 18 * g + 2, qs, 16) == 0);
          std::uint16_t d;
          std::memcpy(&d, blocks.data() + 18 * g, 2);
          const bool untouched = blocks[18 * g] == 0xEE && blocks[18 * g + 1] == 0xEE;
          REQUIRE(((!all_d && untouched) || d == singlequant::float_to_half_bits(sb[g])));
        }
        if (variant == 6 || groups % 16 != 0) CHECK(!all_d);  // the out-of-range step, the block path
        CHECK(std::memcmp(sa.data(), sb.data(), groups * sizeof(float)) == 0);
        CHECK(ca.nan_count == cb.nan_count);
        CHECK(ca.inf_count == cb.inf_count);
        CHECK(ca.zero_scale_count == cb.zero_scale_count);
        CHECK(ca.scale_count == cb.scale_count);
        CHECK(ca.clip_ratio_sum == cb.clip_ratio_sum);
      }
}

// The Q4_0 kernel's vector fp16 conversion (vcvtps2ph, round to nearest even) against
// float_to_half_bits on every float it may convert: all finite |x| <= 65504 at a stride, and
// every fp16 value, the midpoints between neighbours (the ties) and the floats either side of them,
// both signs, subnormal halves included.
TEST_CASE("avx512_quant_ops::half_bits: float_to_half_bits' bits for |x| <= 65504") {
#if defined(__AVX512F__) && defined(__AVX512BW__)
  if constexpr (std::is_same_v<singlequant::detail::arch::quant_ops_t<test_arch>,
                               singlequant::detail::arch::avx512_quant_ops>) {
    std::vector<float> in;
    const std::uint32_t top = std::bit_cast<std::uint32_t>(65504.0f);
    for (std::uint32_t b = 0; b <= top; b += 997) in.push_back(std::bit_cast<float>(b));
    in.push_back(65504.0f);
    for (std::uint16_t h = 0; h < 0x7BFF; ++h) {
      const float a = singlequant::half_bits_to_float(h);
      const float mid = (a + singlequant::half_bits_to_float(static_cast<std::uint16_t>(h + 1))) / 2;  // exact
      in.insert(in.end(), {a, std::nextafter(mid, 0.0f), mid, std::nextafter(mid, 1e9f)});
    }
    const std::size_t signed_count = in.size();
    for (std::size_t i = 0; i < signed_count; ++i) in.push_back(-in[i]);
    while (in.size() % 16 != 0) in.push_back(0.0f);
    std::vector<std::uint16_t> out(in.size());
    for (std::size_t i = 0; i < in.size(); i += 16)
      singlequant::detail::arch::avx512_quant_ops::half_bits16(in.data() + i, out.data() + i);
    std::size_t mismatches = 0;
    for (std::size_t i = 0; i < in.size(); ++i)
      if (out[i] != singlequant::float_to_half_bits(in[i]) && mismatches++ < 8) {
        INFO("x = " << in[i] << " bits " << std::bit_cast<std::uint32_t>(in[i]));
        CHECK(out[i] == singlequant::float_to_half_bits(in[i]));
      }
    CHECK(mismatches == 0);
    CHECK(in.size() > 2'000'000);
  }
#endif
}
