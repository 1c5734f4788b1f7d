// quantize_13b - the single pass at LLaMA-2-13B (or 7B) shape, on synthetic weights and activations.
//
// What runs is the stage structure of quantize_model (model/quantize.hpp) with the library's public
// pieces, streamed so that neither the model nor its INT4 copy is ever held whole:
//   pass 1, per layer (tasks in parallel): synthetic calibration rows (2048 tokens per site, with
//     massive tokens and systematic outlier channels) -> calibrator::observe; the residual sites
//     (attention_input, ffn_input of every layer) pool into one calibrator (two fixed shards merged
//     in order), o_proj / down get their own and are built at once (calibrator::build with sampled
//     weight rows: the joint objective of quantize_preset(singlequant)); then the shared residual
//     transform R1 from the pooled statistics and max_rows / layers sampled q/k/v/gate/up rows.
//   pass 2, per linear in row (or column) blocks: weights regenerated, W diag(g), W <- W R1 (inputs on
//     the residual stream), o / down outputs W <- R1^T W, W <- W R at o_proj / down inputs, then
//     quantize() with the model layer's default weight options (per row, -7..7, MSE clip search).
//     The packed blocks are checksummed and dropped (13B packs to 6.4 GB: a real run writes them to
//     a file, which is not timed here). Embedding and classifier (float32 in quantize_model) are not
//     included.
// Weights come from a counter-based hash (any element from its index, so a block is generated where
// it is needed and nothing is stored); generation is its own stage and the total is printed with and
// without it. Every task writes disjoint results and the shards merge in a fixed order, so the
// checksum is the same for every thread count (the 1-thread and all-core runs are compared).
// Each configuration runs in a child process, so its peak RSS (getrusage) is its own.
//
// quantize_13b [--shape 13b|7b|tiny] [--threads N] [--layers L] [--tokens T] [--quick] [--skip-when-quick]
//             [--method singlequant|hadamard]
//   --method hadamard: the randomised-Hadamard rules (no ART / URT to build), to time the other stages
//   alone. Without --threads: 1 thread, then every core. --quick (or SINGLEQUANT_BENCH_QUICK=1): --layers 1,
//   every core only (--skip-when-quick: nothing). Last line of each run: shape=... threads=... total_seconds=... peak_rss_mib=...
#include <singlequant/calibrator.hpp>
#include <singlequant/detail/float_gemm.hpp>
#include <singlequant/model/quantize.hpp>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

namespace sq = singlequant;

namespace {

using clock_type = std::chrono::steady_clock;
double since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }
// CPU seconds of the calling thread: the stages are timed in these, which a loaded machine inflates
// much less than wall time (wall time counts the time other jobs hold the core).
double thread_cpu() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}
double process_cpu() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

struct shape {
  std::string name;
  sq::llama_config config;
};

shape shape_named(const std::string& name) {
  sq::llama_config c;
  if (name == "13b") c = {.dim = 5120, .hidden_dim = 13824, .n_layers = 40, .n_heads = 40, .n_kv_heads = 40};
  else if (name == "7b") c = {.dim = 4096, .hidden_dim = 11008, .n_layers = 32, .n_heads = 32, .n_kv_heads = 32};
  else if (name == "tiny") c = {.dim = 256, .hidden_dim = 768, .n_layers = 2, .n_heads = 2, .n_kv_heads = 2};
  else throw std::runtime_error("--shape must be 13b, 7b or tiny, not " + name);
  c.vocab_size = 32000;
  c.max_seq_len = 4096;
  return {name, c};
}

// splitmix64's finaliser of (key, index): any element of any tensor, independently.
inline std::uint64_t hash(std::uint64_t key, std::uint64_t index) noexcept {
  std::uint64_t z = key + (index + 1) * 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
// Triangular in (-1, 1) from the two halves of one hash (a cheap bell shape).
inline float noise(std::uint64_t key, std::uint64_t index) noexcept {
  const std::uint64_t h = hash(key, index);
  const auto a = static_cast<float>(h & 0xffffffffULL), b = static_cast<float>(h >> 32);
  return (a + b) * (1.0f / 4294967296.0f) - 1.0f;
}
inline std::uint64_t key_of(std::size_t layer, std::uint64_t what) noexcept {
  return hash(0x5eed13bULL, (static_cast<std::uint64_t>(layer) << 8) | what);
}

// Weight element (r, c) of a linear (tensor keys 0..6, by linear_kind), ~ N(0, 1/cols)-like, with a
// few heavier input columns (weights of LLMs have them too).
inline float weight(std::size_t layer, sq::linear_kind kind, std::size_t r, std::size_t c, std::size_t cols) noexcept {
  const std::uint64_t key = key_of(layer, static_cast<std::uint64_t>(kind));
  const float column_gain = ((static_cast<std::uint64_t>(c) + key) * 0x9e3779b97f4a7c15ULL) >> 58 == 0 ? 4.0f : 1.0f;
  return noise(key, r * cols + c) * column_gain * 2.4f / std::sqrt(static_cast<float>(cols));
}
// RMSNorm gains (attention_norm: which 0, ffn_norm: which 1), in [0.05, 1].
inline float norm_gain(std::size_t layer, int which, std::size_t k) noexcept {
  return 0.525f + 0.475f * noise(key_of(layer, 16 + static_cast<std::uint64_t>(which)), k);
}

// One row of synthetic calibration activations at a site. Residual sites: systematic outlier
// channels (the same in every layer, x20) and massive tokens (every 512th token, two channels at
// x400, as LLaMA-2's BOS-like massive activations); o_proj: per-head scales; down (SwiGLU output):
// products of two noises (heavy tails), systematic channels and the massive tokens' spikes.
void activation_row(std::size_t layer, sq::site_kind site, std::size_t t, std::size_t n, float* row) {
  const std::uint64_t key = key_of(layer, 32 + static_cast<std::uint64_t>(site));
  const bool massive = t % 512 == 0;
  const std::uint64_t base = static_cast<std::uint64_t>(t) * n;
  for (std::size_t k = 0; k < n; ++k) {
    const std::uint64_t ch = (static_cast<std::uint64_t>(k) + 0xc4a77e15ULL) * 0x9e3779b97f4a7c15ULL >> 40;
    float v = noise(key, base + k);
    switch (site) {
      case sq::site_kind::attention_input:
      case sq::site_kind::ffn_input:
        if (ch % 211 == 0) v *= 20.0f;
        if (massive && (k == 1415 % n || k == 2533 % n)) v = 400.0f;
        break;
      case sq::site_kind::o_proj_input: v *= 0.5f + static_cast<float>(hash(key, k / 128 + (1ULL << 40)) % 4); break;
      case sq::site_kind::down_input:
        v *= noise(key ^ 0xffULL, base + k) * 3.0f;
        if (ch % 401 == 0) v *= 15.0f;
        if (massive && k == 7890 % n) v = 600.0f;
        break;
      case sq::site_kind::classifier_input: break;
    }
    row[k] = v;
  }
}

// Mixes 8 bytes at a time (order-dependent), for the packed blocks' checksum.
std::uint64_t checksum_bytes(const void* data, std::size_t bytes, std::uint64_t h) {
  const auto* p = static_cast<const unsigned char*>(data);
  std::size_t i = 0;
  for (; i + 8 <= bytes; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * 0x100000001b3ULL;
  }
  for (; i < bytes; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}

struct stage_seconds {  // thread seconds of one task
  double generate = 0, observe = 0, build = 0, fold = 0, pack = 0;
  void add(const stage_seconds& o) {
    generate += o.generate, observe += o.observe, build += o.build, fold += o.fold, pack += o.pack;
  }
  double busy() const { return generate + observe + build + fold + pack; }
};

struct run_result {
  stage_seconds wall;  // each phase's wall time split between its stages by their thread CPU seconds
  stage_seconds cpu;   // thread CPU seconds of every stage, summed over the threads
  double residual_build = 0, residual_build_cpu = 0, total = 0, total_cpu = 0;
  std::uint64_t checksum = 0;
  std::size_t weights = 0;
};

void add_split(stage_seconds& wall, const stage_seconds& busy, double phase_wall) {
  const double b = busy.busy();
  if (b <= 0) return;
  wall.generate += phase_wall * busy.generate / b;
  wall.observe += phase_wall * busy.observe / b;
  wall.build += phase_wall * busy.build / b;
  wall.fold += phase_wall * busy.fold / b;
  wall.pack += phase_wall * busy.pack / b;
}

run_result run(const sq::llama_config& c, std::size_t tokens, std::size_t threads, sq::quant_method method) {
  using sq::site_kind, sq::linear_kind;
  const std::size_t L = c.n_layers, d = c.dim, hidden = c.hidden_dim;
  const sq::quantize_model_options options = sq::quantize_preset(method, 0);
  auto rules_for = [&](std::size_t l, site_kind site) {
    sq::transform_options r = options.online_rules;
    r.hadamard.seed = sq::detail::site_seed(r.hadamard.seed, l, site);
    return r;
  };
  auto width_of = [&](site_kind s) { return s == site_kind::down_input ? hidden : d; };
  run_result out;
  const auto total_start = clock_type::now();
  const double cpu_start = process_cpu();

  // Pass 1: statistics and the online builds.
  constexpr std::size_t shards = 2;  // fixed (not the thread count): the merged result must not depend on it
  constexpr std::size_t chunk = 256;
  std::vector<std::optional<sq::calibrator>> residual_cal(shards);
  std::vector<std::vector<double>> residual_rows(L);  // sampled q/k/v/gate/up rows (norms folded), per layer
  std::vector<std::array<std::optional<sq::site_transform>, 2>> online(L);  // o_proj, down
  const std::size_t tasks1 = shards + 2 * L;
  std::vector<stage_seconds> busy1(tasks1);
  const std::size_t residual_budget = options.residual_rules.weight_term.max_rows;
  const std::size_t quota = residual_budget == 0 ? 0 : std::max<std::size_t>(1, residual_budget / L);
  auto phase = clock_type::now();
  sq::detail::parallel_for(tasks1, threads, [&](std::size_t task) {
    stage_seconds& s = busy1[task];
    auto observe_site = [&](sq::calibrator& cal, std::size_t l, site_kind site) {
      const std::size_t n = width_of(site);
      std::vector<float> rows(chunk * n);
      for (std::size_t t0 = 0; t0 < tokens; t0 += chunk) {
        const std::size_t count = std::min(chunk, tokens - t0);
        auto t = thread_cpu();
        for (std::size_t i = 0; i < count; ++i) activation_row(l, site, t0 + i, n, rows.data() + i * n);
        s.generate += (thread_cpu() - t);
        t = thread_cpu();
        cal.observe(sq::matrix_view<const float>(rows.data(), count, n));
        s.observe += (thread_cpu() - t);
      }
    };
    if (task < shards) {
      residual_cal[task].emplace(d, options.residual_rules);
      for (std::size_t l = task; l < L; l += shards) {
        observe_site(*residual_cal[task], l, site_kind::attention_input);
        observe_site(*residual_cal[task], l, site_kind::ffn_input);
        // Evenly strided rows of the stacked readers q, k, v, gate, up (W diag(g)).
        const auto t = thread_cpu();
        const std::size_t stacked = 3 * d + 2 * hidden;
        const std::size_t count = options.residual_rules.weight_term.lambda > 0 ? std::min(quota, stacked) : 0;
        residual_rows[l].resize(count * d);
        for (std::size_t i = 0; i < count; ++i) {
          std::size_t r = i * stacked / count;
          const linear_kind kind = r < d ? linear_kind::q : r < 2 * d ? linear_kind::k : r < 3 * d ? linear_kind::v
                                   : r < 3 * d + hidden ? linear_kind::gate : linear_kind::up;
          r = r < 3 * d ? r % d : (r - 3 * d) % hidden;
          const int norm = kind == linear_kind::gate || kind == linear_kind::up ? 1 : 0;
          for (std::size_t k = 0; k < d; ++k)
            residual_rows[l][i * d + k] = static_cast<double>(weight(l, kind, r, k, d)) *
                                          static_cast<double>(norm_gain(l, norm, k));
        }
        s.generate += (thread_cpu() - t);
      }
      return;
    }
    const std::size_t l = (task - shards) / 2;
    const site_kind site = (task - shards) % 2 == 0 ? site_kind::o_proj_input : site_kind::down_input;
    const linear_kind reader = site == site_kind::o_proj_input ? linear_kind::o : linear_kind::down;
    const std::size_t n = width_of(site), reader_rows = d;  // o and down both have dim outputs
    sq::calibrator cal(n, rules_for(l, site));
    observe_site(cal, l, site);
    // The joint objective's weight rows: evenly strided rows of the reader (o or down).
    auto t = thread_cpu();
    const std::size_t max_rows = options.online_rules.weight_term.max_rows;
    const std::size_t count = max_rows == 0 ? reader_rows : std::min(max_rows, reader_rows);
    std::vector<float> w(count * n);
    for (std::size_t i = 0; i < count; ++i)
      for (std::size_t k = 0; k < n; ++k) w[i * n + k] = weight(l, reader, i * reader_rows / count, k, n);
    s.generate += (thread_cpu() - t);
    t = thread_cpu();
    const sq::matrix_view<const float> view(w.data(), count, n);
    online[l][site == site_kind::o_proj_input ? 0 : 1].emplace(cal.build(std::span<const sq::matrix_view<const float>>(&view, 1)));
    s.build += (thread_cpu() - t);
  });
  stage_seconds busy;
  for (const auto& b : busy1) busy.add(b);
  add_split(out.wall, busy, since(phase));
  out.cpu.add(busy);
  std::printf("  pass 1 (statistics, online builds) done at %.1f s\n", since(total_start));
  std::fflush(stdout);

  // The shared residual transform R1.
  phase = clock_type::now();
  const double r1_cpu = thread_cpu();
  for (std::size_t s = 1; s < shards; ++s) residual_cal[0]->merge(*residual_cal[s]);
  std::vector<double> sampled;
  for (const auto& r : residual_rows) sampled.insert(sampled.end(), r.begin(), r.end());
  residual_rows = {};
  const std::size_t sampled_rows = sampled.size() / d;
  const sq::matrix_view<const double> sampled_view(sampled.data(), sampled_rows, d);
  const sq::site_transform residual = residual_cal[0]->build(
      std::span<const sq::matrix_view<const double>>(&sampled_view, sampled_rows > 0 ? 1 : 0));
  residual_cal.clear();
  sampled = {};
  out.residual_build = since(phase);
  out.residual_build_cpu = thread_cpu() - r1_cpu;
  out.wall.build += out.residual_build;
  out.cpu.build += out.residual_build_cpu;

  // Pass 2: fold and pack, one linear at a time in blocks of rows (columns for R1^T on o / down).
  constexpr std::size_t block = 32;
  std::uint64_t h = 0xcbf29ce484222325ULL;
  std::vector<double> m;  // o / down: the whole matrix after W <- R1^T W (one buffer for all layers:
                          // a fresh 0.2-0.6 GB per linear cost page faults and a memset per layer)
  for (std::size_t l = 0; l < L; ++l) {
    for (const linear_kind kind : sq::layer_linears) {
      const std::array<std::size_t, 2> shape = sq::linear_shape(c, kind);
      const std::size_t rows = shape[0], cols = shape[1];  // not a structured binding: clang 14 cannot capture one
      out.weights += rows * cols;
      const site_kind site = sq::site_of(kind);
      const bool output_rotated = kind == linear_kind::o || kind == linear_kind::down;
      const sq::site_transform* in = site == site_kind::o_proj_input ? &*online[l][0]
                                     : site == site_kind::down_input ? &*online[l][1]
                                                                     : &residual;
      const int norm = site == site_kind::attention_input ? 0 : 1;
      std::vector<double> gains;  // W diag(g) for the readers of a norm
      if (!output_rotated)
        for (std::size_t k = 0; k < cols; ++k) gains.push_back(static_cast<double>(norm_gain(l, norm, k)));
      phase = clock_type::now();
      busy = {};
      if (output_rotated) {
        if (m.size() < rows * cols) m.resize(rows * cols);  // every element is written below
        const std::size_t col_blocks = (cols + block - 1) / block;
        std::vector<stage_seconds> b(col_blocks);
        sq::detail::parallel_for(col_blocks, threads, [&](std::size_t task) {
          const std::size_t c0 = task * block, count = std::min(block, cols - c0);
          std::vector<double> t(count * rows);  // columns of W as rows: (R1^T W)^T = W^T R1
          auto t0 = thread_cpu();
          for (std::size_t r = 0; r < rows; ++r)
            for (std::size_t j = 0; j < count; ++j) t[j * rows + r] = weight(l, kind, r, c0 + j, cols);
          b[task].generate += (thread_cpu() - t0);
          t0 = thread_cpu();
          residual.apply_rows(sq::matrix_view<double>(t.data(), count, rows));
          for (std::size_t r = 0; r < rows; ++r)
            for (std::size_t j = 0; j < count; ++j) m[r * cols + c0 + j] = t[j * rows + r];
          b[task].fold += (thread_cpu() - t0);
        });
        for (const auto& x : b) busy.add(x);
      }
      const std::size_t row_blocks = (rows + block - 1) / block;
      std::vector<stage_seconds> b(row_blocks);
      std::vector<std::uint64_t> sums(row_blocks);
      sq::detail::parallel_for(row_blocks, threads, [&](std::size_t task) {
        const std::size_t r0 = task * block, count = std::min(block, rows - r0);
        std::vector<double> local;
        double* x = nullptr;
        auto t0 = thread_cpu();
        if (output_rotated) {
          x = m.data() + r0 * cols;
        } else {
          local.resize(count * cols);
          for (std::size_t i = 0; i < count; ++i)
            for (std::size_t k = 0; k < cols; ++k) local[i * cols + k] = static_cast<double>(weight(l, kind, r0 + i, k, cols));
          x = local.data();
          b[task].generate += (thread_cpu() - t0);
          t0 = thread_cpu();
          for (std::size_t i = 0; i < count; ++i)
            for (std::size_t k = 0; k < cols; ++k) x[i * cols + k] *= gains[k];
        }
        const sq::matrix_view<double> view(x, count, cols);
        in->apply_rows(view);  // W <- W R (R1, or the site's online transform)
        b[task].fold += (thread_cpu() - t0);
        t0 = thread_cpu();
        const sq::packed_int4 q = sq::quantize(sq::matrix_view<const double>(view), options.weights);
        std::uint64_t s = checksum_bytes(q.codes().data(), q.codes().size(), 0xcbf29ce484222325ULL);
        sums[task] = checksum_bytes(q.scales().data(), q.scales().size() * sizeof(float), s);
        b[task].pack += (thread_cpu() - t0);
      });
      for (const auto& x : b) busy.add(x);
      for (const std::uint64_t s : sums) h = hash(h, s);
      add_split(out.wall, busy, since(phase));
      out.cpu.add(busy);
    }
    if ((l + 1) % 10 == 0 || l + 1 == L) {
      std::printf("  pass 2 (fold, pack): %zu of %zu layers done at %.1f s\n", l + 1, L, since(total_start));
      std::fflush(stdout);
    }
  }
  out.checksum = h;
  out.total = since(total_start);
  out.total_cpu = process_cpu() - cpu_start;
  return out;
}

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

int run_child(const shape& full, std::size_t layers, std::size_t tokens, std::size_t threads, sq::quant_method method,
              int pipe_out) {
  sq::llama_config c = full.config;
  c.n_layers = layers;
  const std::size_t used = sq::detail::resolve_threads(threads);
  std::printf("== %s shape: %zu of %zu layers, dim %zu, ffn %zu, %zu heads of %zu; %zu calibration tokens per site; %zu thread(s); %s\n",
              full.name.c_str(), layers, full.config.n_layers, c.dim, c.hidden_dim, c.n_heads, c.dim / c.n_heads,
              tokens, used, method == sq::quant_method::singlequant ? "singlequant (default options)"
                            : "hadamard rules (no ART / URT builds: the other stages alone)");
  std::fflush(stdout);
  const run_result r = run(c, tokens, used, method);
  const double no_gen = r.total - r.wall.generate;
  const double scale = static_cast<double>(full.config.n_layers) / static_cast<double>(layers);
  // Per-layer stages scale with the layer count; R1's build reads capped samples (about constant).
  const double extrapolated = (r.total - r.residual_build) * scale + r.residual_build;
  const double extrapolated_no_gen = (no_gen - r.residual_build) * scale + r.residual_build;
  std::printf("  stage (wall s)        generate %8.2f  statistics %8.2f  build %8.2f (R1 %.2f)  fold %8.2f  pack %8.2f\n",
              r.wall.generate, r.wall.observe, r.wall.build, r.residual_build, r.wall.fold, r.wall.pack);
  std::printf("  stage (thread CPU s)  generate %8.2f  statistics %8.2f  build %8.2f (R1 %.2f)  fold %8.2f  pack %8.2f\n",
              r.cpu.generate, r.cpu.observe, r.cpu.build, r.residual_build_cpu, r.cpu.fold, r.cpu.pack);
  std::printf("  process CPU %.2f s (%.2f s without generation); on an idle machine the wall time is about this over the threads\n",
              r.total_cpu, r.total_cpu - r.cpu.generate);
  std::printf("  total %.2f s including weight / activation generation, %.2f s without (the single pass)\n", r.total,
              no_gen);
  std::printf("  %zu linear weights: %.3g weights/s (without generation)\n", r.weights,
              static_cast<double>(r.weights) / no_gen);
  const double cpu_no_gen = r.total_cpu - r.cpu.generate;
  const double extrapolated_cpu = (cpu_no_gen - r.residual_build_cpu) * scale + r.residual_build_cpu;
  if (layers != full.config.n_layers)
    std::printf("  extrapolated to %zu layers: %.1f s without generation, %.1f s with; %.1f CPU s without generation\n",
                full.config.n_layers, extrapolated_no_gen, extrapolated, extrapolated_cpu);
  std::printf("  checksum of the packed weights %016llx\n", static_cast<unsigned long long>(r.checksum));
  std::printf("shape=%s method=%s threads=%zu layers=%zu tokens=%zu total_seconds=%.3f total_with_generation_seconds=%.3f "
              "generate_seconds=%.3f statistics_seconds=%.3f build_seconds=%.3f fold_seconds=%.3f pack_seconds=%.3f "
              "cpu_seconds=%.3f cpu_seconds_without_generation=%.3f extrapolated_total_seconds=%.3f "
              "extrapolated_cpu_seconds=%.3f peak_rss_mib=%.1f\n",
              full.name.c_str(), method == sq::quant_method::singlequant ? "singlequant" : "hadamard", used, layers,
              tokens, no_gen, r.total, r.wall.generate, r.wall.observe, r.wall.build,
              r.wall.fold, r.wall.pack, r.total_cpu, cpu_no_gen, extrapolated_no_gen, extrapolated_cpu, peak_rss_mib());
  std::fflush(stdout);
  const std::uint64_t sum = r.checksum;
  return write(pipe_out, &sum, sizeof sum) == static_cast<ssize_t>(sizeof sum) ? 0 : 1;
}

std::size_t parse_size(const char* s, const char* option) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s, &end, 10);
  if (end == s || *end != '\0') throw std::runtime_error(std::string(option) + " needs a number, not " + s);
  return static_cast<std::size_t>(v);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string shape_name = "13b";
    std::optional<std::size_t> threads, layers;
    std::size_t tokens = 2048;
    const char* env = std::getenv("SINGLEQUANT_BENCH_QUICK");
    bool quick = env != nullptr && std::strcmp(env, "") != 0 && std::strcmp(env, "0") != 0;
    bool skip_when_quick = false;
    sq::quant_method method = sq::quant_method::singlequant;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&]() -> const char* {
        if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
        return argv[++i];
      };
      if (a == "--shape") shape_name = value();
      else if (a == "--threads") threads = parse_size(value(), "--threads");
      else if (a == "--layers") layers = parse_size(value(), "--layers");
      else if (a == "--tokens") tokens = parse_size(value(), "--tokens");
      else if (a == "--quick") quick = true;
      else if (a == "--skip-when-quick") skip_when_quick = true;
      else if (a == "--method") {
        const std::string m = value();
        if (m == "singlequant") method = sq::quant_method::singlequant;
        else if (m == "hadamard") method = sq::quant_method::hadamard;
        else throw std::runtime_error("--method must be singlequant or hadamard, not " + m);
      }
      else if (a == "--help" || a == "-h") {
        std::printf("quantize_13b [--shape 13b|7b|tiny] [--threads N (0: every core)] [--layers L] [--tokens T] [--quick]"
                    " [--skip-when-quick] [--method singlequant|hadamard]\n");
        return 0;
      } else {
        throw std::runtime_error("unknown option " + a);
      }
    }
    const shape s = shape_named(shape_name);
    if (quick && skip_when_quick) {
      std::printf("quantize_13b --shape %s: skipped in quick mode\n", shape_name.c_str());
      return 0;
    }
    if (quick && !layers) layers = 1;
    const std::size_t L = layers.value_or(s.config.n_layers);
    if (L == 0 || L > s.config.n_layers || tokens == 0)
      throw std::runtime_error("--layers must be 1.." + std::to_string(s.config.n_layers) + " and --tokens positive");
    std::vector<std::size_t> configs;
    if (threads) configs = {*threads};
    else if (quick) configs = {0};
    else configs = {1, 0};
    std::optional<std::uint64_t> first;
    for (const std::size_t t : configs) {
      int fds[2];
      if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
      std::fflush(stdout);
      const pid_t pid = fork();
      if (pid < 0) throw std::runtime_error("fork failed");
      if (pid == 0) {
        close(fds[0]);
        int rc = 1;
        try {
          rc = run_child(s, L, tokens, t, method, fds[1]);
        } catch (const std::exception& e) {
          std::fprintf(stderr, "quantize_13b: %s\n", e.what());
        }
        std::fflush(stdout);
        _exit(rc);
      }
      close(fds[1]);
      std::uint64_t sum = 0;
      const bool got = read(fds[0], &sum, sizeof sum) == static_cast<ssize_t>(sizeof sum);
      close(fds[0]);
      int status = 0;
      waitpid(pid, &status, 0);
      if (!got || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return 1;
      if (first && *first != sum) {
        std::fprintf(stderr, "quantize_13b: the packed weights differ between thread counts\n");
        return 1;
      }
      first = sum;
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "quantize_13b: %s\n", e.what());
    return 2;
  }
}
