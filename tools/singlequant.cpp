// singlequant — the command-line front door: eval (the FP / RTN / Hadamard / SingleQuant table),
// inspect (outlier statistics per site), generate (text from the W4A4 model) and quantize.
//
// Exit codes: 0 success, 2 bad input (command line or file: one message on stderr), 1 an internal
// error. Output files are written to a temporary name and renamed at the end (no partial file).
#include <singlequant/model/evaluate.hpp>
#include <singlequant/model/quantize.hpp>

#include <formats/json.hpp>
#include <formats/qmodel.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include "cli/args.hpp"
#include "cli/model_input.hpp"

namespace sq = singlequant;
namespace cli = singlequant_tools::cli;
using cli::usage_error;

namespace {

// ---------------------------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------------------------

/// Progress on stderr, only when stderr is a terminal: "\r[k/n] label".
class progress {
 public:
  explicit progress(std::size_t total) : total_(total), enabled_(isatty(STDERR_FILENO) != 0) {}
  ~progress() { done(); }
  progress(const progress&) = delete;
  progress& operator=(const progress&) = delete;
  void step(const std::string& label) {
    ++count_;
    if (!enabled_) return;
    const std::size_t width = 24, filled = total_ == 0 ? width : std::min(width, width * count_ / total_);
    std::fprintf(stderr, "\r[%s%s] %zu/%zu %-40s", std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(), count_, total_, label.c_str());
    std::fflush(stderr);
    shown_ = true;
  }
  void done() {
    if (enabled_ && shown_) std::fprintf(stderr, "\r%*s\r", 80, "");
    shown_ = false;
  }

 private:
  std::size_t total_, count_ = 0;
  bool enabled_, shown_ = false;
};

/// Writes `content` to `path` through `path.tmp` + rename, so no partial file is ever left.
void write_file_atomically(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw usage_error("'" + path + "': cannot create the output file");
    out << content;
    out.flush();
    if (!out) {
      out.close();
      std::remove(tmp.c_str());
      throw usage_error("'" + path + "': write error");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw usage_error("'" + path + "': cannot rename the temporary file into place");
  }
}

sq::quant_method parse_method(const std::string& name) {
  if (name == "rtn") return sq::quant_method::rtn;
  if (name == "hadamard") return sq::quant_method::hadamard;
  if (name == "singlequant") return sq::quant_method::singlequant;
  throw usage_error("unknown method '" + name + "' (rtn, hadamard or singlequant)");
}

const char* method_title(sq::quant_method m) {
  switch (m) {
    case sq::quant_method::rtn: return "RTN";
    case sq::quant_method::hadamard: return "Hadamard";
    case sq::quant_method::singlequant: return "SingleQuant";
  }
  return "?";
}
const char* method_key(sq::quant_method m) {
  switch (m) {
    case sq::quant_method::rtn: return "rtn";
    case sq::quant_method::hadamard: return "hadamard";
    case sq::quant_method::singlequant: return "singlequant";
  }
  return "?";
}

sq::int4_grid parse_grid(const std::string& g) {
  if (g == "-7..7" || g == "symmetric7") return sq::int4_grid::symmetric7;
  if (g == "-8..7" || g == "full8") return sq::int4_grid::full8;
  throw usage_error("unknown grid '" + g + "' (-7..7 or -8..7)");
}

sq::quantize_model_options method_options(sq::quant_method m, std::uint64_t seed, sq::int4_grid grid,
                                          std::size_t threads, sq::weight_quantizer weights) {
  auto o = sq::quantize_preset(m, seed);
  o.weights.grid = o.activations.grid = grid;
  o.threads = threads;
  o.quantizer = weights;
  return o;
}

sq::weight_quantizer parse_weights(const std::string& name) {
  if (name == "rtn") return sq::weight_quantizer::rtn;
  if (name == "gptq") return sq::weight_quantizer::gptq;
  throw usage_error("--weights: '" + name + "' is not rtn or gptq");
}

// The options every command that runs the model shares.
const std::vector<cli::option_spec> model_options = {
    {"--tokenizer", "FILE", "llama2.c tokenizer.bin (needed for text files and prompts; GGUF files carry theirs)"},
    {"--calib-text", "FILE", "calibration text (default: sequences sampled from the FP model, seeds 0..)"},
    {"--sequences", "N", "sequences (or text windows, at most) for calibration and evaluation (default 8)"},
    {"--length", "L", "tokens per sequence / window, BOS included (default 128)"},
    {"--grid", "G", "INT4 grid of weights and activations: -7..7 (default) or -8..7"},
    {"--threads", "N", "worker threads (default 0: every core)"},
    {"--weights", "W", "weight quantiser: rtn (round to nearest, MSE clip; default) or gptq"},
};

std::vector<cli::option_spec> with_model_options(std::vector<cli::option_spec> own) {
  own.insert(own.end(), model_options.begin(), model_options.end());
  return own;
}

struct run_setup {
  cli::loaded_model model;
  std::size_t sequences = 8, length = 128, threads = 0;
  sq::int4_grid grid = sq::int4_grid::symmetric7;
  sq::weight_quantizer weights = sq::weight_quantizer::rtn;
  std::string calibration_source = "sampled";
  std::vector<std::vector<std::int32_t>> calibration;
};

/// Loads the model and reads the shared options; calibration comes after (make_calibration), so
/// that a bad text file fails before any sampling.
run_setup setup_model(const cli::arguments& a) {
  run_setup s;
  s.model = cli::load_model(a.positional()[0], a.text("--tokenizer"));
  const std::size_t max_len = s.model.weights.config.max_seq_len;
  s.sequences = a.number("--sequences", 8, 1, 1u << 20);
  s.length = a.number("--length", std::min<std::size_t>(128, max_len), 2, max_len);
  s.threads = a.number("--threads", 0, 0, 4096);
  s.grid = parse_grid(a.text("--grid", "-7..7"));
  s.weights = parse_weights(a.text("--weights", "rtn"));
  return s;
}

void make_calibration(run_setup& s, const cli::arguments& a) {
  if (a.has("--calib-text")) {
    const std::string path = a.text("--calib-text");
    s.calibration = cli::text_windows(s.model, cli::read_text_file(path, "calibration text"), path, s.length,
                                      s.sequences);
    s.calibration_source = path;
  } else {
    s.calibration = cli::sampled_sequences(s.model, s.sequences, s.length, 0);
  }
}

run_setup setup_run(const cli::arguments& a) {
  run_setup s = setup_model(a);
  make_calibration(s, a);
  return s;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// ---------------------------------------------------------------------------------------------
// eval
// ---------------------------------------------------------------------------------------------

struct result_row {
  std::string method, weights;
  std::uint64_t seed = 0;
  double ppl = 0, kl = 0, top1 = 0, seconds = 0;
};

void print_table_row(const std::string& name, const std::vector<result_row>& runs) {
  auto stat = [&](auto field, double& mean, double& spread) {
    mean = 0;
    double lo = field(runs[0]), hi = lo;
    for (const auto& r : runs) {
      mean += field(r);
      lo = std::min(lo, field(r));
      hi = std::max(hi, field(r));
    }
    mean /= double(runs.size());
    spread = (hi - lo) / 2;
  };
  double m[4], s[4];
  stat([](const result_row& r) { return r.ppl; }, m[0], s[0]);
  stat([](const result_row& r) { return r.kl; }, m[1], s[1]);
  stat([](const result_row& r) { return r.top1; }, m[2], s[2]);
  stat([](const result_row& r) { return r.seconds; }, m[3], s[3]);
  // Cells of one display width whether or not they carry a spread (± is one column, two bytes).
  auto cell = [&](int k, int digits) {
    char buf[64];
    if (runs.size() == 1) std::snprintf(buf, sizeof buf, "%8.*f %*s", digits, m[k], digits + 4, "");
    else std::snprintf(buf, sizeof buf, "%8.*f ± %.*f", digits, m[k], digits, s[k]);
    return std::string(buf);
  };
  std::printf("| %-22s | %s | %s | %s | %10.3f |\n", name.c_str(), cell(0, 4).c_str(), cell(1, 4).c_str(),
              cell(2, 4).c_str(), m[3]);
  std::fflush(stdout);
}

std::string number_json(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

int cmd_eval(int argc, char** argv) {
  cli::arguments a(
      "eval", "MODEL [options]",
      "Quantises MODEL to W4A4 with each method and prints perplexity, KL(P_fp || P_q), top-1 agreement\n"
      "with the FP model and the quantisation wall time. Hadamard and SingleQuant run once per seed\n"
      "(mean ± half the range). Without --eval-text the evaluation sequences are sampled from the FP\n"
      "model with seeds 1000003.. (calibration uses seeds 0..); a text file is tokenised as one stream\n"
      "and cut into windows of --length tokens, each starting with BOS.",
      with_model_options({
          {"--methods", "LIST", "comma-separated: rtn,hadamard,singlequant (default all three)"},
          {"--quantized", "FILE", "evaluate a quantised-model file (from `quantize`) instead of --methods"},
          {"--eval-text", "FILE", "evaluation text (default: sampled sequences)"},
          {"--seeds", "N", "seeds of the Hadamard and SingleQuant runs (default 3)"},
          {"--json", "FILE", "also write the results as JSON"},
      }));
  if (!a.parse(argc, argv, 2)) return 0;
  a.expect_positional(1, "one MODEL file");
  if (a.has("--quantized") && a.has("--methods")) throw usage_error("eval: give --quantized or --methods, not both");
  std::vector<sq::quant_method> methods;
  const std::string quantized_path = a.text("--quantized");
  if (a.has("--quantized") && quantized_path.empty()) throw usage_error("--quantized: empty file name");
  if (!a.has("--quantized"))
  for (const auto& name : cli::split_list(a.text("--methods", "rtn,hadamard,singlequant"), "--methods")) {
    const auto m = parse_method(name);
    if (std::find(methods.begin(), methods.end(), m) != methods.end())
      throw usage_error("--methods: '" + name + "' given twice");
    methods.push_back(m);
  }
  const std::uint64_t seeds = a.number("--seeds", 3, 1, 1000);
  const std::string json_path = a.text("--json");
  if (a.has("--json") && json_path.empty()) throw usage_error("--json: empty file name");

  const auto t0 = std::chrono::steady_clock::now();
  run_setup s = setup_model(a);
  std::vector<std::vector<std::int32_t>> held_out;
  std::string eval_source = "sampled";
  if (a.has("--eval-text")) {
    eval_source = a.text("--eval-text");
    held_out = cli::text_windows(s.model, cli::read_text_file(eval_source, "evaluation text"), eval_source, s.length,
                                 s.sequences);
  }
  make_calibration(s, a);
  if (held_out.empty()) held_out = cli::sampled_sequences(s.model, s.sequences, s.length, 1000003);
  const auto& c = s.model.weights.config;
  std::optional<singlequant::tools::qmodel_file> file;
  if (!quantized_path.empty()) {
    file.emplace(singlequant::tools::read_qmodel_file(quantized_path));
    const auto& fc = file->model.config();
    if (fc.dim != c.dim || fc.hidden_dim != c.hidden_dim || fc.n_layers != c.n_layers || fc.vocab_size != c.vocab_size ||
        fc.n_heads != c.n_heads || fc.n_kv_heads != c.n_kv_heads)
      throw usage_error("eval: '" + quantized_path + "' was quantised from another model (dim " + std::to_string(fc.dim) +
                        ", " + std::to_string(fc.n_layers) + " layers, vocab " + std::to_string(fc.vocab_size) + ")");
  }
  const std::string weights_key = s.weights == sq::weight_quantizer::gptq ? "gptq" : "rtn";
  std::size_t total_runs = file ? 2 : 1;
  for (const auto m : methods) total_runs += m == sq::quant_method::rtn ? 1 : seeds;
  std::printf("model %s (%s): dim %zu, hidden %zu, %zu layers, %zu heads (%zu kv), vocab %zu\n", s.model.path.c_str(),
              s.model.format.c_str(), c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size);
  std::printf("calibration: %zu x %zu tokens (%s); evaluation: %zu x %zu tokens (%s); grid %s\n\n",
              s.calibration.size(), s.length, s.calibration_source.c_str(), held_out.size(), s.length,
              eval_source.c_str(), s.grid == sq::int4_grid::full8 ? "-8..7" : "-7..7");
  std::printf("| %-22s | %-17s | %-17s | %-17s | %10s |\n|---|---|---|---|---|\n", "method", "perplexity", "KL",
              "top-1", "quantise s");
  std::fflush(stdout);

  std::vector<result_row> all;
  {
    progress bar(total_runs);
    bar.step("FP");
    const sq::evaluation fp = sq::evaluate(s.model.weights, s.model.weights, held_out, s.threads);
    bar.done();
    all.push_back({"fp", "fp", 0, fp.perplexity, 0, 1, 0});
    print_table_row("FP", {all.back()});
    if (file) {
      bar.step("file");
      const sq::evaluation e = sq::evaluate(s.model.weights, file->model, held_out, s.threads);
      bar.done();
      all.push_back({"file", "file", 0, e.perplexity, e.kl, e.top1, 0});
      print_table_row(quantized_path, {all.back()});
    }
    for (const auto m : methods) {
      std::vector<result_row> runs;
      const std::uint64_t n = m == sq::quant_method::rtn ? 1 : seeds;
      for (std::uint64_t seed = 0; seed < n; ++seed) {
        bar.step(std::string(method_key(m)) + " seed " + std::to_string(seed));
        sq::quantize_report report;
        const auto q = sq::quantize_model(s.model.weights, s.calibration,
                                          method_options(m, seed, s.grid, s.threads, s.weights), &report);
        const sq::evaluation e = sq::evaluate(s.model.weights, q, held_out, s.threads);
        runs.push_back({method_key(m), weights_key, seed, e.perplexity, e.kl, e.top1, report.seconds_total});
      }
      bar.done();
      all.insert(all.end(), runs.begin(), runs.end());
      print_table_row(std::string(method_title(m)) + (s.weights == sq::weight_quantizer::gptq ? " + GPTQ" : "") +
                          (n > 1 ? " (" + std::to_string(n) + " seeds)" : ""),
                      runs);
    }
  }
  const double total_seconds = seconds_since(t0);
  std::printf("\ntotal %.1f s\n", total_seconds);

  if (!json_path.empty()) {
    namespace json = singlequant_tools::json;
    std::ostringstream o;
    o << "{\"model\": " << json::quote(s.model.path) << ", \"config\": {\"format\": " << json::quote(s.model.format)
      << ", \"dim\": " << c.dim << ", \"hidden_dim\": " << c.hidden_dim << ", \"n_layers\": " << c.n_layers
      << ", \"n_heads\": " << c.n_heads << ", \"n_kv_heads\": " << c.n_kv_heads << ", \"vocab_size\": " << c.vocab_size
      << ", \"max_seq_len\": " << c.max_seq_len << ", \"sequences\": " << held_out.size()
      << ", \"calibration_sequences\": " << s.calibration.size() << ", \"length\": " << s.length
      << ", \"seeds\": " << seeds << ", \"grid\": \"" << (s.grid == sq::int4_grid::full8 ? "-8..7" : "-7..7")
      << "\", \"eval\": " << json::quote(eval_source) << ", \"calibration\": " << json::quote(s.calibration_source)
      << "}, \"results\": [";
    for (std::size_t i = 0; i < all.size(); ++i) {
      const auto& r = all[i];
      o << (i ? ", " : "") << "{\"method\": \"" << r.method << "\", \"seed\": " << r.seed << ", \"weights\": \""
        << r.weights << "\", \"ppl\": " << number_json(r.ppl) << ", \"kl\": " << number_json(r.kl)
        << ", \"top1\": " << number_json(r.top1) << ", \"quantize_seconds\": " << number_json(r.seconds) << "}";
    }
    o << "], \"total_seconds\": " << number_json(total_seconds) << "}\n";
    write_file_atomically(json_path, o.str());
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// inspect
// ---------------------------------------------------------------------------------------------

/// Outlier statistics of one site's rows (tokens x width).
struct site_stats {
  std::size_t width = 0, rows = 0;
  std::vector<double> channel_absmax;
  double sum_max_rms = 0, worst_max_rms = 0, sum2 = 0, sum4 = 0;

  void add(sq::matrix_view<const float> x) {
    if (width == 0) {
      width = x.cols();
      channel_absmax.assign(width, 0.0);
    }
    for (std::size_t r = 0; r < x.rows(); ++r) {
      double mx = 0, ss = 0;
      for (std::size_t j = 0; j < width; ++j) {
        const double v = double(x(r, j)), v2 = v * v;
        mx = std::max(mx, std::abs(v));
        channel_absmax[j] = std::max(channel_absmax[j], std::abs(v));
        ss += v2;
        sum2 += v2;
        sum4 += v2 * v2;
      }
      const double rms = std::sqrt(ss / double(width));
      const double ratio = rms > 0 ? mx / rms : 0;
      sum_max_rms += ratio;
      worst_max_rms = std::max(worst_max_rms, ratio);
      ++rows;
    }
  }
  double largest() const { return *std::max_element(channel_absmax.begin(), channel_absmax.end()); }
  double median() const {
    std::vector<double> v = channel_absmax;
    std::nth_element(v.begin(), v.begin() + std::ptrdiff_t(v.size() / 2), v.end());
    return v[v.size() / 2];
  }
  /// Pooled kurtosis E[x^4] / E[x^2]^2 (3 for a Gaussian).
  double kurtosis() const {
    const double n = double(rows) * double(width), m2 = sum2 / n;
    return m2 > 0 ? (sum4 / n) / (m2 * m2) : 0;
  }
};

using site_table = std::vector<std::array<site_stats, 4>>;  // [layer][site_kind]

template <class Run>
site_table collect_sites(std::size_t layers, const std::vector<std::vector<std::int32_t>>& seqs, Run run) {
  site_table t(layers);
  sq::forward_hooks hooks;
  hooks.on_site_input = [&](sq::site_id id, std::size_t, sq::matrix_view<float> x) {
    if (id.kind == sq::site_kind::classifier_input || id.layer >= layers) return;
    t[id.layer][std::size_t(id.kind)].add(sq::matrix_view<const float>(x.data(), x.rows(), x.cols()));
  };
  for (const auto& s : seqs) run(s, hooks);
  return t;
}

void write_svg(const std::string& path, const std::string& title, const std::vector<const site_stats*>& series,
               const std::vector<std::string>& names) {
  static const char* colours[] = {"#888888", "#1f77b4", "#d62728"};
  const double w = 900, h = 360, left = 60, right = 20, top = 40, bottom = 40;
  double ymax = 0;
  for (const auto* s : series) ymax = std::max(ymax, s->largest());
  if (ymax <= 0) ymax = 1;
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << w << "\" height=\"" << h << "\">\n"
    << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    << "<text x=\"" << left << "\" y=\"24\" font-family=\"sans-serif\" font-size=\"14\">" << title
    << ": per-channel absmax</text>\n";
  const std::size_t n = series.front()->width;
  for (std::size_t k = 0; k < series.size(); ++k) {
    o << "<polyline fill=\"none\" stroke-width=\"1.2\" stroke=\"" << colours[k % 3] << "\" points=\"";
    for (std::size_t j = 0; j < n; ++j) {
      const double x = left + (w - left - right) * (n > 1 ? double(j) / double(n - 1) : 0.5);
      const double y = top + (h - top - bottom) * (1 - series[k]->channel_absmax[j] / ymax);
      o << x << "," << y << " ";
    }
    o << "\"/>\n<text x=\"" << (w - 220) << "\" y=\"" << (24 + 16 * double(k)) << "\" font-family=\"sans-serif\" "
      << "font-size=\"12\" fill=\"" << colours[k % 3] << "\">" << names[k] << "</text>\n";
  }
  o << "<line x1=\"" << left << "\" y1=\"" << (h - bottom) << "\" x2=\"" << (w - right) << "\" y2=\"" << (h - bottom)
    << "\" stroke=\"black\"/>\n<line x1=\"" << left << "\" y1=\"" << top << "\" x2=\"" << left << "\" y2=\""
    << (h - bottom) << "\" stroke=\"black\"/>\n<text x=\"4\" y=\"" << (top + 4) << "\" font-family=\"sans-serif\" "
    << "font-size=\"11\">" << ymax << "</text>\n<text x=\"" << (w / 2) << "\" y=\"" << (h - 12)
    << "\" font-family=\"sans-serif\" font-size=\"11\">channel (0.." << (n - 1) << ")</text>\n</svg>\n";
  write_file_atomically(path, o.str());
}

int cmd_inspect(int argc, char** argv) {
  cli::arguments a(
      "inspect", "MODEL [options]",
      "Prints the configuration and, per layer and site, the outlier statistics of the site inputs on\n"
      "the calibration sequences: largest and median channel absmax, mean and worst token max/RMS and\n"
      "the kurtosis E[x^4]/E[x^2]^2, for the FP model and after the Hadamard and SingleQuant transforms\n"
      "(as the W4A4 model sees its inputs: norms folded, online transforms applied, before quantising).",
      with_model_options({
          {"--svg", "FILE", "draw per-channel absmax of one site (--site) before and after, as SVG"},
          {"--site", "LAYER:KIND", "site for --svg, KIND = attention|o_proj|ffn|down (default 0:attention)"},
          {"--seed", "S", "Hadamard seed (default 0)"},
      }));
  if (!a.parse(argc, argv, 2)) return 0;
  a.expect_positional(1, "one MODEL file");
  const std::uint64_t seed = a.number("--seed", 0, 0, ~std::uint64_t(0));
  std::size_t svg_layer = 0, svg_kind = 0;
  if (a.has("--site")) {
    const std::string spec = a.text("--site");
    const std::size_t colon = spec.find(':');
    if (colon == std::string::npos) throw usage_error("--site '" + spec + "': expected LAYER:KIND");
    const std::string layer = spec.substr(0, colon), kind = spec.substr(colon + 1);
    const char* kinds[] = {"attention", "o_proj", "ffn", "down"};
    svg_kind = 4;
    for (std::size_t k = 0; k < 4; ++k)
      if (kind == kinds[k]) svg_kind = k;
    if (svg_kind == 4) throw usage_error("--site '" + spec + "': KIND is attention, o_proj, ffn or down");
    if (layer.empty() || layer.find_first_not_of("0123456789") != std::string::npos || layer.size() > 6)
      throw usage_error("--site '" + spec + "': LAYER is a number");
    svg_layer = std::stoul(layer);
  }
  run_setup s = setup_run(a);
  const auto& c = s.model.weights.config;
  if (svg_layer >= c.n_layers)
    throw usage_error("--site: layer " + std::to_string(svg_layer) + " but the model has " +
                      std::to_string(c.n_layers) + " layers");
  const std::size_t params = sq::parameter_count(c);
  std::printf("model %s (%s)\n  dim %zu, hidden_dim %zu, layers %zu, heads %zu, kv heads %zu, head_dim %zu,\n"
              "  vocab %zu, max_seq_len %zu, norm_eps %g, rope_theta %g, classifier %s, %zu parameters\n",
              s.model.path.c_str(), s.model.format.c_str(), c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads,
              c.head_dim(), c.vocab_size, c.max_seq_len, double(c.norm_eps), c.rope_theta,
              c.tied_classifier ? "tied to the embedding" : "separate", params);
  std::printf("statistics over %zu x %zu calibration tokens (%s)\n", s.calibration.size(), s.length,
              s.calibration_source.c_str());

  progress bar(3);
  bar.step("FP");
  const site_table fp = collect_sites(c.n_layers, s.calibration, [&](const auto& seq, const sq::forward_hooks& h) {
    sq::kv_cache cache(c, seq.size());
    std::vector<float> logits(seq.size() * c.vocab_size);
    sq::forward(s.model.weights, seq, cache, sq::matrix_view<float>(logits.data(), seq.size(), c.vocab_size), h);
  });
  auto after = [&](sq::quant_method m) {
    const auto q = sq::quantize_model(s.model.weights, s.calibration, method_options(m, seed, s.grid, s.threads, s.weights));
    return collect_sites(c.n_layers, s.calibration, [&](const auto& seq, const sq::forward_hooks& h) {
      sq::kv_cache cache(c, seq.size());
      std::vector<float> logits(seq.size() * c.vocab_size);
      q.forward(seq, cache, sq::matrix_view<float>(logits.data(), seq.size(), c.vocab_size), h);
    });
  };
  bar.step("hadamard");
  const site_table had = after(sq::quant_method::hadamard);
  bar.step("singlequant");
  const site_table sqt = after(sq::quant_method::singlequant);
  bar.done();

  static const char* kind_names[] = {"attention", "o_proj", "ffn", "down"};
  std::printf("\n| layer | site | width | transform | largest absmax | median absmax | mean max/RMS | worst max/RMS | kurtosis |\n"
              "|---|---|---|---|---|---|---|---|---|\n");
  for (std::size_t l = 0; l < c.n_layers; ++l)
    for (std::size_t k = 0; k < 4; ++k) {
      const site_stats* rows[] = {&fp[l][k], &had[l][k], &sqt[l][k]};
      const char* names[] = {"none", "Hadamard", "SingleQuant"};
      for (std::size_t t = 0; t < 3; ++t) {
        const site_stats& st = *rows[t];
        if (st.rows == 0) continue;
        std::printf("| %zu | %s | %zu | %s | %.3f | %.3f | %.2f | %.2f | %.2f |\n", l, kind_names[k], st.width, names[t],
                    st.largest(), st.median(), st.sum_max_rms / double(st.rows), st.worst_max_rms, st.kurtosis());
      }
    }
  if (a.has("--svg")) {
    const std::string title = "layer " + std::to_string(svg_layer) + " " + kind_names[svg_kind];
    write_svg(a.text("--svg"), title, {&fp[svg_layer][svg_kind], &had[svg_layer][svg_kind], &sqt[svg_layer][svg_kind]},
              {"none (FP)", "Hadamard", "SingleQuant"});
    std::printf("\nwrote %s (%s)\n", a.text("--svg").c_str(), title.c_str());
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// generate
// ---------------------------------------------------------------------------------------------

int cmd_generate(int argc, char** argv) {
  cli::arguments a(
      "generate", "MODEL --prompt TEXT [options]",
      "Quantises MODEL with --method (fp: no quantisation) and continues the prompt with -n tokens,\n"
      "printing the text on stdout and the speed on stderr. The W4A4 model runs on the INT4 GEMM kernels\n"
      "(--backend int4, default) or on the simulated path (dequantised weights, float products).",
      with_model_options({
          {"--prompt", "TEXT", "the prompt (BOS is prepended; may be empty)"},
          {"-n", "N", "tokens to generate (default 64)"},
          {"--method", "M", "fp, rtn, hadamard or singlequant (default singlequant)"},
          {"--quantized", "FILE", "run a quantised-model file (from `quantize`) instead of quantising MODEL"},
          {"--backend", "B", "int4 (INT4 x INT4 GEMM kernels, default) or simulated"},
          {"--temperature", "T", "0 (default): greedy; > 0: sample softmax(logits / T)"},
          {"--seed", "S", "Hadamard and sampling seed (default 0)"},
      }));
  if (!a.parse(argc, argv, 2)) return 0;
  a.expect_positional(1, "one MODEL file");
  const std::string method = a.text("--method", "singlequant");
  const bool fp = method == "fp";
  const sq::quant_method m = fp ? sq::quant_method::rtn : parse_method(method);
  const double temperature = a.real("--temperature", 0.0, 0.0, 100.0);
  const std::uint64_t seed = a.number("--seed", 0, 0, ~std::uint64_t(0));
  const std::string backend = a.text("--backend", "int4");  // checked before any work is done
  if (backend != "int4" && backend != "simulated") throw usage_error("--backend: '" + backend + "' is not int4 or simulated");
  const std::string quantized_path = a.text("--quantized");
  if (a.has("--quantized") && (quantized_path.empty() || a.has("--method")))
    throw usage_error("generate: --quantized FILE replaces --method (give one of them)");
  run_setup s = quantized_path.empty() ? setup_run(a) : setup_model(a);
  if (!s.model.tok)
    throw usage_error("generate: needs the model's tokenizer (--tokenizer FILE for a llama2.c model)");
  const auto& c = s.model.weights.config;
  std::vector<int> prompt_ids = s.model.tok->encode(a.text("--prompt"), true);
  const std::size_t n = a.number("-n", 64, 0, c.max_seq_len);
  if (prompt_ids.size() + n > c.max_seq_len)
    throw usage_error("generate: prompt of " + std::to_string(prompt_ids.size()) + " tokens + " + std::to_string(n) +
                      " exceeds the model's max_seq_len " + std::to_string(c.max_seq_len));
  std::optional<sq::quantized_model> q;
  if (!quantized_path.empty()) {
    q = std::move(singlequant::tools::read_qmodel_file(quantized_path).model);
    const auto& fc = q->config();
    if (fc.dim != c.dim || fc.n_layers != c.n_layers || fc.vocab_size != c.vocab_size)
      throw usage_error("generate: '" + quantized_path + "' was quantised from another model");
  } else if (!fp) {
    progress bar(1);
    bar.step("quantise (" + method + ")");
    q = sq::quantize_model(s.model.weights, s.calibration, method_options(m, seed, s.grid, s.threads, s.weights));
  }
  if (q) q->set_backend(backend == "int4" ? sq::w4a4_backend::int4 : sq::w4a4_backend::simulated);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::int32_t> tokens(prompt_ids.begin(), prompt_ids.end());
  sq::kv_cache cache(c, tokens.size() + n);
  std::vector<float> logits(c.vocab_size);
  auto step = [&](std::span<const std::int32_t> t) {
    // Logits of the last position only: a chunk of T tokens fills a T x vocab view, so run the
    // prompt in one call and keep its last row.
    std::vector<float> all(t.size() * c.vocab_size);
    const sq::matrix_view<float> view(all.data(), t.size(), c.vocab_size);
    if (q) q->forward(t, cache, view);
    else sq::forward(s.model.weights, t, cache, view);
    std::copy(all.end() - std::ptrdiff_t(c.vocab_size), all.end(), logits.begin());
  };
  std::printf("%s", a.text("--prompt").c_str());
  std::fflush(stdout);
  step(tokens);
  std::uint64_t rng = seed * 0x9E3779B97F4A7C15ULL + 1;
  auto uniform = [&] {  // splitmix64
    std::uint64_t z = (rng += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return double((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
  };
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t next = std::size_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    if (temperature > 0) {
      const double peak = double(logits[next]);
      std::vector<double> p(c.vocab_size);
      double total = 0;
      for (std::size_t v = 0; v < c.vocab_size; ++v) total += p[v] = std::exp((double(logits[v]) - peak) / temperature);
      double u = uniform() * total;
      for (std::size_t v = 0; v < c.vocab_size; ++v)
        if ((u -= p[v]) < 0) {
          next = v;
          break;
        }
    }
    const int prev = tokens.back();
    tokens.push_back(std::int32_t(next));
    std::printf("%s", s.model.tok->decode(prev, int(next)).c_str());
    std::fflush(stdout);
    if (i + 1 < n) step(std::span<const std::int32_t>(&tokens.back(), 1));
  }
  const double secs = seconds_since(t0);
  std::printf("\n");
  std::fprintf(stderr, "%s: %zu tokens in %.3f s (%.1f tokens/s, prompt of %zu tokens included in the time)\n",
               method.c_str(), n, secs, secs > 0 ? double(n) / secs : 0.0, prompt_ids.size());
  return 0;
}

// ---------------------------------------------------------------------------------------------
// quantize
// ---------------------------------------------------------------------------------------------

int cmd_quantize(int argc, char** argv) {
  cli::arguments a("quantize", "MODEL --method M --out FILE [options]",
                   "Runs the single W4A4 pass (calibration, transforms, folding, INT4 packing) and writes the\n"
                   "quantised-model file.",
                   with_model_options({
                       {"--method", "M", "rtn, hadamard or singlequant (required)"},
                       {"--out", "FILE", "the quantised-model file to write (required)"},
                       {"--seed", "S", "Hadamard seed (default 0)"},
                   }));
  if (!a.parse(argc, argv, 2)) return 0;
  a.expect_positional(1, "one MODEL file");
  if (!a.has("--method")) throw usage_error("quantize: --method is required (rtn, hadamard or singlequant)");
  if (!a.has("--out") || a.text("--out").empty()) throw usage_error("quantize: --out FILE is required");
  const sq::quant_method m = parse_method(a.text("--method"));
  const std::uint64_t seed = a.number("--seed", 0, 0, ~std::uint64_t(0));
  run_setup s = setup_run(a);
  sq::quantize_report r;
  const sq::quantize_model_options options = method_options(m, seed, s.grid, s.threads, s.weights);
  const auto q = sq::quantize_model(s.model.weights, s.calibration, options, &r);
  std::printf("%s: %zu calibration tokens; stages (s): forward %.3f, statistics %.3f, build %.3f, fold+pack %.3f, "
              "total %.3f; rotations: residual %zu, online %zu\n",
              method_key(m), r.calibration_tokens, r.seconds_forward, r.seconds_statistics, r.seconds_build,
              r.seconds_fold_pack, r.seconds_total, r.residual_rotations, r.online_rotations);
  // Written to a temporary file in the same directory, renamed at the end (no partial output).
  singlequant::tools::write_qmodel_file(a.text("--out"), q, singlequant::tools::describe_options(options));
  std::printf("wrote %s\n", a.text("--out").c_str());
  return 0;
}

void print_usage(std::FILE* out) {
  std::fprintf(out,
               "usage: singlequant COMMAND [options]   (singlequant COMMAND --help for each)\n\n"
               "commands:\n"
               "  eval      quantise a model with rtn / hadamard / singlequant and print perplexity, KL, top-1\n"
               "  inspect   configuration and per-site outlier statistics before and after the transforms\n"
               "  generate  text from the W4A4 model (INT4 kernels), and tokens/s\n"
               "  quantize  the single pass, written to a quantised-model file\n");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc < 2) {
      std::fprintf(stderr, "usage: singlequant eval|inspect|generate|quantize [options] (see singlequant --help)\n");
      return 2;
    }
    const std::string command = argv[1];
    if (command == "--help" || command == "-h" || command == "help") {
      print_usage(stdout);
      return 0;
    }
    if (command == "eval") return cmd_eval(argc, argv);
    if (command == "inspect") return cmd_inspect(argc, argv);
    if (command == "generate") return cmd_generate(argc, argv);
    if (command == "quantize") return cmd_quantize(argc, argv);
    std::fprintf(stderr, "singlequant: unknown command '%s' (eval, inspect, generate or quantize; see --help)\n",
                 command.c_str());
    return 2;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "singlequant: out of memory (input sizes too large?)\n");
    return 2;
  } catch (const std::exception& e) {
    // Every library and reader error names the function or file and the sizes: bad input.
    std::fprintf(stderr, "singlequant: %s\n", e.what());
    return 2;
  }
}
