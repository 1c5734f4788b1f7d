// The INT4 storage format: canonical nibble layout, packed_int4, fp16, ggml Q4_0 and GPTQ layouts.
// Expected bytes are computed by hand from the layout descriptions in int4.hpp.
#include <singlequant/fp16.hpp>
#include <singlequant/int4.hpp>
#include <singlequant/interop/ggml.hpp>
#include <singlequant/interop/gptq.hpp>

#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "test_support.hpp"

namespace sq = singlequant;

namespace {
std::vector<std::int8_t> random_codes(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> dist(-8, 7);
  std::vector<std::int8_t> codes(n);
  for (auto& c : codes) c = static_cast<std::int8_t>(dist(rng));
  return codes;
}
}  // namespace

TEST_CASE("int4 layout: golden bytes, element 2k low nibble, 2k + 1 high nibble, zero tail nibble") {
  const std::vector<std::int8_t> codes = {1, -2, 7, -8, 3};
  std::vector<std::uint8_t> bytes(3, 0xAA);
  sq::pack_int4(codes, bytes);
  CHECK(bytes == std::vector<std::uint8_t>{0xE1, 0x87, 0x03});
  std::vector<std::int8_t> back(5);
  sq::unpack_int4(bytes, back);
  CHECK(back == codes);
  // Every nibble value: two's complement.
  for (int c = -8; c <= 7; ++c) {
    CHECK(sq::to_nibble(c) == static_cast<unsigned>(c & 0xF));
    CHECK(sq::from_nibble(sq::to_nibble(c)) == c);
  }
  CHECK(sq::row_bytes(0) == 0);
  CHECK(sq::row_bytes(1) == 1);
  CHECK(sq::row_bytes(4096) == 2048);
  CHECK(sq::row_bytes(4097) == 2049);
}

TEST_CASE("int4 layout: pack -> unpack is bit exact for every length") {
  for (std::size_t n = 0; n < 70; ++n) {
    const auto codes = random_codes(n, 100 + n);
    std::vector<std::uint8_t> bytes(sq::row_bytes(n));
    sq::pack_int4(codes, bytes);
    if (n % 2 == 1) CHECK((bytes.back() >> 4) == 0);
    std::vector<std::int8_t> back(n);
    sq::unpack_int4(bytes, back);
    CHECK(back == codes);
  }
}

TEST_CASE("int4 layout: bad input is an error and writes nothing") {
  std::vector<std::uint8_t> bytes(2, 0x5A);
  const std::vector<std::int8_t> five = {1, 2, 3, 4, 5}, out_of_range = {1, 8, 3};
  SQ_CHECK_ERROR_CONTAINS(sq::pack_int4(five, bytes), "pack_int4", "destination has 2 bytes", "need 3");
  SQ_CHECK_ERROR_CONTAINS(sq::pack_int4(out_of_range, bytes), "pack_int4", "code 8 at index 1");
  CHECK(bytes == std::vector<std::uint8_t>{0x5A, 0x5A});
  std::vector<std::int8_t> out(5, 9);
  SQ_CHECK_ERROR_CONTAINS(sq::unpack_int4(bytes, out), "unpack_int4", "source has 2 bytes");
  CHECK(out == std::vector<std::int8_t>(5, 9));
}

TEST_CASE("packed_int4: shape, scale index, rows at byte boundaries") {
  sq::packed_int4 q(3, 5, sq::granularity::per_group, 5, sq::int4_grid::full8, true);
  CHECK(q.rows() == 3);
  CHECK(q.cols() == 5);
  CHECK(q.row_bytes() == 3);
  CHECK(q.codes().size() == 9);
  CHECK(reinterpret_cast<std::uintptr_t>(q.codes().data()) % 64 == 0);
  CHECK(q.scale_count() == 3);
  CHECK(q.zero_points().size() == 3);
  CHECK(q.scale_index(2, 4) == 2);
  // Row 1's element 0 is the low nibble of byte 3.
  q.codes()[3] = 0x0F;
  CHECK(q.code(1, 0) == -1);
  CHECK(q.code(0, 4) == 0);
  q.scales()[1] = 0.5f;
  q.zero_points()[1] = -2;
  CHECK(q.value(1, 0) == 0.5f);  // (-1 - (-2)) * 0.5
  sq::packed_int4 g(2, 8, sq::granularity::per_group, 4, sq::int4_grid::symmetric7, false);
  CHECK(g.scale_count() == 4);
  CHECK(g.scale_index(1, 5) == 3);
  CHECK(!g.has_zero_points());
  sq::packed_int4 c(2, 8, sq::granularity::per_column, 0, sq::int4_grid::symmetric7, false);
  CHECK(c.scale_count() == 8);
  CHECK(c.scale_index(1, 5) == 5);
  SQ_CHECK_ERROR_CONTAINS(sq::packed_int4(2, 10, sq::granularity::per_group, 4, sq::int4_grid::full8, false),
                          "packed_int4", "group size 4 does not divide the row length 10");
  const auto codes = random_codes(15, 3);
  sq::packed_int4 r(3, 5, sq::granularity::per_row, 0, sq::int4_grid::full8, false);
  for (std::size_t i = 0; i < 3; ++i)
    sq::pack_int4(sq::vector_view<const std::int8_t>(codes.data() + 5 * i, 5), r.row_codes(i));
  CHECK(r.unpack() == codes);
  std::vector<std::int8_t> wrong(10);
  SQ_CHECK_ERROR_CONTAINS(r.unpack(sq::matrix_view<std::int8_t>(wrong.data(), 2, 5)),
                          "packed_int4::unpack", "destination is 2 x 5");
}

TEST_CASE("int4_dot: int32 sum of code products, checked against unpacked codes") {
  for (std::size_t n : {0u, 1u, 7u, 64u, 4095u}) {
    const auto a = random_codes(n, 11 + n), b = random_codes(n, 12 + n);
    std::vector<std::uint8_t> pa(sq::row_bytes(n)), pb(sq::row_bytes(n));
    sq::pack_int4(a, pa);
    sq::pack_int4(b, pb);
    std::int64_t expected = 0;
    for (std::size_t i = 0; i < n; ++i) expected += a[i] * b[i];
    CHECK(sq::int4_dot(pa, pb, n) == expected);
  }
  // Worst case magnitude: all -8.
  std::vector<std::uint8_t> eights(512, 0x88);
  CHECK(sq::int4_dot(eights, eights, 1024) == 1024 * 64);
  SQ_CHECK_ERROR_CONTAINS(sq::int4_dot(eights, eights, 1025), "int4_dot", "1025 codes need 513");
  std::vector<std::uint8_t> huge(std::size_t{1} << 24);
  SQ_CHECK_ERROR_CONTAINS(sq::int4_dot(huge, huge, std::size_t{1} << 25), "int4_dot", "overflow");
}

TEST_CASE("fp16: golden values, round to nearest even, subnormals, Inf, NaN") {
  CHECK(sq::float_to_half_bits(1.0f) == 0x3C00);
  CHECK(sq::float_to_half_bits(-2.0f) == 0xC000);
  CHECK(sq::float_to_half_bits(0.5f) == 0x3800);
  CHECK(sq::float_to_half_bits(0.1f) == 0x2E66);
  CHECK(sq::float_to_half_bits(-0.0f) == 0x8000);
  CHECK(sq::float_to_half_bits(65504.0f) == 0x7BFF);
  CHECK(sq::float_to_half_bits(65519.99f) == 0x7BFF);
  CHECK(sq::float_to_half_bits(65520.0f) == 0x7C00);  // halfway to 65536 rounds to even: Inf
  CHECK(sq::float_to_half_bits(-std::numeric_limits<float>::infinity()) == 0xFC00);
  CHECK((sq::float_to_half_bits(std::numeric_limits<float>::quiet_NaN()) & 0x7FFF) > 0x7C00);
  CHECK(sq::float_to_half_bits(1.0f + 0x1p-11f) == 0x3C00);        // tie -> even (down)
  CHECK(sq::float_to_half_bits(1.0f + 3 * 0x1p-11f) == 0x3C02);    // tie -> even (up)
  CHECK(sq::float_to_half_bits(1.0f + 0x1p-11f + 0x1p-20f) == 0x3C01);
  CHECK(sq::float_to_half_bits(0x1p-14f) == 0x0400);  // smallest normal
  CHECK(sq::float_to_half_bits(0x1p-24f) == 0x0001);  // smallest subnormal
  CHECK(sq::float_to_half_bits(0x1p-25f) == 0x0000);  // tie -> even 0
  CHECK(sq::float_to_half_bits(1.5f * 0x1p-25f) == 0x0001);
  CHECK(sq::float_to_half_bits(3 * 0x1p-25f) == 0x0002);  // 1.5 ulp: tie -> even 2
  CHECK(sq::float_to_half_bits(0x1p-14f - 0x1p-25f) == 0x0400);  // rounds up into the normals
  CHECK(sq::half_bits_to_float(0x3C00) == 1.0f);
  CHECK(sq::half_bits_to_float(0x0001) == 0x1p-24f);
  CHECK(sq::half_bits_to_float(0x03FF) == 1023 * 0x1p-24f);
  CHECK(std::isinf(sq::half_bits_to_float(0x7C00)));
  CHECK(std::isnan(sq::half_bits_to_float(0x7E00)));
  // Every fp16 value survives half -> float -> half; midpoints between neighbours round to even.
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    const auto bits = static_cast<std::uint16_t>(h);
    const float f = sq::half_bits_to_float(bits);
    if (std::isnan(f)) continue;
    REQUIRE(sq::float_to_half_bits(f) == bits);
    if ((h & 0x7FFF) < 0x7BFF) {
      const float next = sq::half_bits_to_float(static_cast<std::uint16_t>(h + 1));
      const float mid = static_cast<float>((static_cast<double>(f) + static_cast<double>(next)) / 2);
      const std::uint16_t even = (h & 1) == 0 ? bits : static_cast<std::uint16_t>(h + 1);
      REQUIRE(sq::float_to_half_bits(mid) == even);
    }
  }
}

TEST_CASE("ggml Q4_0: golden block bytes and a lossless round trip") {
  // codes: element j (0..15) = j - 8, element j + 16 = 7 - j  ->  u_j = j, u_{j+16} = 15 - j,
  // byte j = j | (15 - j) << 4; scale 0.5 -> fp16 0x3800 (little endian 00 38).
  sq::packed_int4 q(1, 32, sq::granularity::per_group, 32, sq::int4_grid::full8, false);
  std::vector<std::int8_t> codes(32);
  for (int j = 0; j < 16; ++j) {
    codes[static_cast<std::size_t>(j)] = static_cast<std::int8_t>(j - 8);
    codes[static_cast<std::size_t>(j + 16)] = static_cast<std::int8_t>(7 - j);
  }
  sq::pack_int4(codes, q.row_codes(0));
  q.scales()[0] = 0.5f;
  const auto blocks = sq::to_q4_0(q);
  REQUIRE(blocks.size() == 1);
  std::array<std::uint8_t, 18> raw{};
  std::memcpy(raw.data(), &blocks[0], 18);
  const std::array<std::uint8_t, 18> expected = {0x00, 0x38, 0xF0, 0xE1, 0xD2, 0xC3, 0xB4, 0xA5,
                                                 0x96, 0x87, 0x78, 0x69, 0x5A, 0x4B, 0x3C, 0x2D,
                                                 0x1E, 0x0F};
  CHECK(raw == expected);
  const sq::packed_int4 back = sq::from_q4_0(blocks, 1, 32);
  CHECK(back.gran() == sq::granularity::per_group);
  CHECK(back.group_size() == 32);
  CHECK(back.unpack() == codes);
  CHECK(back.scales()[0] == 0.5f);
  // Several rows and blocks, negative scales.
  sq::packed_int4 big(3, 64, sq::granularity::per_group, 32, sq::int4_grid::full8, false);
  const auto many = random_codes(3 * 64, 5);
  for (std::size_t i = 0; i < 3; ++i)
    sq::pack_int4(sq::vector_view<const std::int8_t>(many.data() + 64 * i, 64), big.row_codes(i));
  for (std::size_t k = 0; k < 6; ++k) big.scales()[k] = (k % 2 == 0 ? -1.0f : 1.0f) * 0.125f * static_cast<float>(k + 1);
  const auto big_blocks = sq::to_q4_0(big);
  const sq::packed_int4 big_back = sq::from_q4_0(big_blocks, 3, 64);
  CHECK(big_back.unpack() == many);
  for (std::size_t k = 0; k < 6; ++k) CHECK(big_back.scales()[k] == big.scales()[k]);
}

// The word-parallel nibble reorder against the element-by-element definition: qs[j] =
// (c_j + 8) | (c_{j+16} + 8) << 4 from the unpacked codes, every code -8..7 in every position.
TEST_CASE("ggml Q4_0: to_q4_0 equals the element-by-element reference") {
  const std::size_t rows = 5, cols = 256;
  sq::packed_int4 q(rows, cols, sq::granularity::per_group, 32, sq::int4_grid::full8, false);
  auto codes = random_codes(rows * cols, 11);
  for (std::size_t e = 0; e < 32 * 16; ++e) codes[e] = static_cast<std::int8_t>(static_cast<int>(e % 16) - 8);
  for (std::size_t i = 0; i < rows; ++i)
    sq::pack_int4(sq::vector_view<const std::int8_t>(codes.data() + cols * i, cols), q.row_codes(i));
  for (std::size_t k = 0; k < q.scales().size(); ++k) q.scales()[k] = 0.01f * static_cast<float>(k) - 0.3f;
  const auto blocks = sq::to_q4_0(q);
  REQUIRE(blocks.size() == rows * cols / 32);
  for (std::size_t b = 0; b < blocks.size(); ++b) {
    CHECK(blocks[b].d == sq::float_to_half_bits(q.scales()[b]));
    for (std::size_t j = 0; j < 16; ++j) {
      const auto low = static_cast<unsigned>(codes[32 * b + j] + 8);
      const auto high = static_cast<unsigned>(codes[32 * b + j + 16] + 8);
      CHECK(blocks[b].qs[j] == static_cast<std::uint8_t>(low | high << 4));
    }
  }
}

TEST_CASE("ggml Q4_0: bad input") {
  sq::packed_int4 row(2, 64, sq::granularity::per_row, 0, sq::int4_grid::full8, false);
  SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::to_q4_0(row)), "to_q4_0", "group size 32");
  sq::packed_int4 asym(2, 64, sq::granularity::per_group, 32, sq::int4_grid::full8, true);
  SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::to_q4_0(asym)), "to_q4_0", "zero points");
  sq::packed_int4 big(1, 32, sq::granularity::per_group, 32, sq::int4_grid::full8, false);
  big.scales()[0] = 1e6f;
  SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::to_q4_0(big)), "to_q4_0", "fp16");
  std::vector<sq::q4_0_block> blocks(3);
  SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::from_q4_0(blocks, 2, 64)), "from_q4_0", "need 4 blocks, got 3");
  SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::from_q4_0(blocks, 1, 48)), "from_q4_0", "multiple of 32");
}

TEST_CASE("GPTQ: golden words (element k at bits 4k, u = code + 8), zero formats, round trip") {
  // 8 x 16 weights, code(n, k) = (k + n) % 16 - 8, so u(n, k) = (k + n) % 16.
  sq::packed_int4 q(8, 16, sq::granularity::per_row, 0, sq::int4_grid::full8, false);
  std::vector<std::int8_t> codes(8 * 16);
  for (std::size_t n = 0; n < 8; ++n)
    for (std::size_t k = 0; k < 16; ++k) codes[n * 16 + k] = static_cast<std::int8_t>((k + n) % 16) - 8;
  for (std::size_t n = 0; n < 8; ++n)
    sq::pack_int4(sq::vector_view<const std::int8_t>(codes.data() + 16 * n, 16), q.row_codes(n));
  for (std::size_t n = 0; n < 8; ++n) q.scales()[n] = 0.25f * static_cast<float>(n + 1);
  const sq::gptq_tensor g = sq::to_gptq(q);
  REQUIRE(g.qweight.size() == 2 * 8);
  CHECK(g.qweight[0] == 0x76543210u);       // word (r = 0, n = 0): u_k = k
  CHECK(g.qweight[1] == 0x87654321u);       // word (0, 1): u_k = k + 1
  CHECK(g.qweight[8] == 0xFEDCBA98u);       // word (1, 0): elements 8..15 of row 0
  CHECK(g.qweight[8 + 7] == 0x6543210Fu);   // word (1, 7): u = (k + 7) % 16 for k = 8..15
  REQUIRE(g.qzeros.size() == 1);
  CHECK(g.qzeros[0] == 0x77777777u);        // v1 stores z - 1 = 7
  CHECK(g.scales[3] == 1.0f);
  const sq::gptq_tensor g2 = sq::to_gptq(q, sq::gptq_zero_format::v2);
  CHECK(g2.qzeros[0] == 0x88888888u);
  for (const auto& gt : {g, g2}) {
    const sq::packed_int4 back = sq::from_gptq(gt);
    CHECK(back.gran() == sq::granularity::per_row);
    CHECK(back.unpack() == codes);
    for (std::size_t n = 0; n < 8; ++n)
      for (std::size_t k = 0; k < 16; ++k) CHECK(back.value(n, k) == q.value(n, k));
  }
}

TEST_CASE("GPTQ: per-group zero points survive, v1 cannot store zero point 0") {
  sq::packed_int4 q(8, 32, sq::granularity::per_group, 8, sq::int4_grid::full8, true);
  const auto codes = random_codes(8 * 32, 21);
  for (std::size_t n = 0; n < 8; ++n)
    sq::pack_int4(sq::vector_view<const std::int8_t>(codes.data() + 32 * n, 32), q.row_codes(n));
  for (std::size_t k = 0; k < q.scale_count(); ++k) {
    q.scales()[k] = 0.01f * static_cast<float>(k + 1);
    q.zero_points()[k] = static_cast<std::int8_t>(static_cast<int>(k % 15) - 7);  // -7..7: unsigned 1..15
  }
  const sq::packed_int4 back = sq::from_gptq(sq::to_gptq(q));
  CHECK(back.gran() == sq::granularity::per_group);
  CHECK(back.unpack() == codes);
  for (std::size_t n = 0; n < 8; ++n)
    for (std::size_t k = 0; k < 32; ++k) CHECK(back.value(n, k) == q.value(n, k));
  q.zero_points()[5] = -8;  // unsigned zero 0
  SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::to_gptq(q)), "to_gptq", "v1 format");
  const sq::packed_int4 v2_back = sq::from_gptq(sq::to_gptq(q, sq::gptq_zero_format::v2));
  CHECK(v2_back.zero_points()[5] == -8);
  sq::packed_int4 odd(4, 16, sq::granularity::per_row, 0, sq::int4_grid::full8, false);
  SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::to_gptq(odd)), "to_gptq", "multiples of 8");
  sq::gptq_tensor broken = sq::to_gptq(q, sq::gptq_zero_format::v2);
  broken.scales.pop_back();
  SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::from_gptq(broken)), "from_gptq", "array sizes");
}

TEST_CASE("issue 14 - from_q4_0 and from_gptq: zero-width shapes with huge row counts are errors, not hangs") {
  // Before: rows 2^57 x cols 0 (no blocks) looped 2^57 times.
  const std::vector<sq::q4_0_block> none;
  for (const std::size_t rows : {std::size_t{1} << 57, std::size_t{1} << 38, (std::size_t{1} << 20) + 1})
    SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::from_q4_0(none, rows, 0)), "packed_int4",
                            "a zero-width tensor may have at most 1048576 rows");
  CHECK(sq::from_q4_0(none, 0, 0).rows() == 0);
  const auto empty_rows = sq::from_q4_0(none, std::size_t{1} << 20, 0);  // at the limit, and every row loop is short
  CHECK(empty_rows.rows() == std::size_t{1} << 20);
  CHECK(sq::to_q4_0(empty_rows).empty());
  CHECK(empty_rows.unpack().empty());
  // Before: out 2^45 x in 0 looped 2^45 times.
  sq::gptq_tensor empty;
  empty.out_features = std::size_t{1} << 45;
  empty.in_features = 0;
  empty.group_size = 8;
  SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::from_gptq(empty)), "packed_int4", "zero-width");
  empty.out_features = 8;
  CHECK(sq::to_gptq(sq::from_gptq(empty)).qweight.empty());
  // Codes beyond the allocation limit.
  SQ_CHECK_ERROR_CONTAINS(sq::packed_int4(std::size_t{1} << 41, 2, sq::granularity::per_row, 0, sq::int4_grid::full8, false),
                          "packed_int4", "exceed the 1099511627776-byte allocation limit");
  // Sizes whose products wrap to the (empty) array sizes are rejected as such.
  sq::gptq_tensor wrapping;
  wrapping.out_features = std::size_t{1} << 63;
  wrapping.in_features = 16;
  wrapping.group_size = 1;
  SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::from_gptq(wrapping)), "from_gptq", "array sizes");
}

TEST_CASE("issue 14 - from_q4_0 and from_gptq refuse NaN and Inf scales, as to_q4_0 does") {
  sq::packed_int4 q(8, 32, sq::granularity::per_group, 32, sq::int4_grid::full8, false);
  for (std::size_t k = 0; k < q.scale_count(); ++k) q.scales()[k] = 0.5f;
  auto blocks = sq::to_q4_0(q);
  for (const std::uint16_t bad : {std::uint16_t{0x7C00}, std::uint16_t{0xFC00}, std::uint16_t{0x7E00}}) {
    auto broken = blocks;
    broken[5].d = bad;  // +Inf, -Inf, NaN in fp16
    SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::from_q4_0(broken, 8, 32)), "from_q4_0", "block 5 (row 5)",
                            "non-finite scale");
  }
  auto g = sq::to_gptq(q);
  for (const float bad : {std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()}) {
    auto broken = g;
    broken.scales[3] = bad;
    SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::from_gptq(broken)), "from_gptq", "row 3 group 0", "not finite");
    auto tensor = q;
    tensor.scales()[2] = bad;
    SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::to_gptq(tensor)), "to_gptq", "not finite");
  }
}

TEST_CASE("issue 14 - packed_int4: out-of-range enums and huge shapes are singlequant errors") {
  // Before: granularity 9 allocated 4 GB; grid 7 was treated as symmetric7.
  SQ_CHECK_ERROR_CONTAINS(sq::packed_int4(4, 8, static_cast<sq::granularity>(9), 0, sq::int4_grid::full8, false),
                          "packed_int4", "granularity has no enumerator of value 9");
  SQ_CHECK_ERROR_CONTAINS(sq::packed_int4(4, 8, sq::granularity::per_row, 0, static_cast<sq::int4_grid>(7), false),
                          "packed_int4", "grid has no enumerator of value 7");
  // Before: std::length_error / std::bad_alloc.
  SQ_CHECK_ERROR_CONTAINS(sq::packed_int4(std::size_t{1} << 41, 2, sq::granularity::per_row, 0, sq::int4_grid::full8, false),
                          "packed_int4", "allocation limit");
  SQ_CHECK_ERROR_CONTAINS(sq::packed_int4(0, std::size_t{1} << 62, sq::granularity::per_column, 0, sq::int4_grid::full8, false),
                          "packed_int4", "scales", "allocation limit");
  SQ_CHECK_ERROR_CONTAINS(sq::packed_int4(std::size_t{1} << 40, std::size_t{1} << 40, sq::granularity::per_row, 0,
                                          sq::int4_grid::full8, false),
                          "packed_int4", "size overflow");
  SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::to_gptq(sq::packed_int4(8, 8, sq::granularity::per_row, 0, sq::int4_grid::full8, false),
                                                        static_cast<sq::gptq_zero_format>(2))),
                          "to_gptq", "zero_format has no enumerator of value 2");
}
