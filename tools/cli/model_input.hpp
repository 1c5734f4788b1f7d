// model_input.hpp — what the `singlequant` command reads: a model file (llama2.c checkpoint or GGUF
// v2/v3 of the llama architecture, told apart by the first bytes), its tokenizer, text files, and the token sequences
// eval and quantize run on (sampled from the float model, or windows of a text).
#pragma once

#include <singlequant/model/evaluate.hpp>
#include <singlequant/model/llama.hpp>

#include <formats/gguf.hpp>
#include <formats/llama2c_model.hpp>
#include <formats/llama2c_tokenizer.hpp>
#include <formats/tokenizer.hpp>

#include <cstdint>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "args.hpp"

namespace singlequant_tools::cli {

struct loaded_model {
  std::string path, format;                     ///< format: "llama2c" or "gguf"
  std::unique_ptr<llama2c::model> llama2c_file;  ///< owns the tensors `weights` views (llama2.c)
  std::unique_ptr<singlequant::llama_model> owned;  ///< owns the tensors `weights` views (GGUF)
  singlequant::llama_weights weights;
  std::optional<tokenizer> tok;                 ///< when the file carries one or --tokenizer gave one
  int bos = 1;                                  ///< BOS id (also without a tokenizer)
};

inline std::string read_text_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw usage_error(what + " '" + path + "': cannot open file");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw usage_error(what + " '" + path + "': read error");
  return text;
}

/// Loads MODEL (format from its first bytes) and, when given, the tokenizer file.
inline loaded_model load_model(const std::string& path, const std::string& tokenizer_path) {
  loaded_model m;
  m.path = path;
  {
    std::ifstream probe(path, std::ios::binary);
    if (!probe) throw usage_error("model '" + path + "': cannot open file");
    char magic[4] = {};
    probe.read(magic, 4);
    if (probe.gcount() == 4 && std::string(magic, 4) == "GGUF") {
      // The tokenizer comes from the file (tokenizer.ggml.*); --tokenizer is not needed.
      if (!tokenizer_path.empty())
        throw usage_error("model '" + path + "': a GGUF file carries its tokenizer; drop --tokenizer");
      singlequant::tools::gguf_llama g = singlequant::tools::read_gguf_llama_file(path);
      m.format = "gguf";
      m.owned = std::make_unique<singlequant::llama_model>(std::move(g.model));
      m.weights = m.owned->weights();
      m.bos = g.tokenizer.bos;
      try {
        m.tok = tokenizer::from_pieces(std::move(g.tokenizer.vocab), std::move(g.tokenizer.scores), g.tokenizer.bos,
                                       g.tokenizer.eos);
      } catch (const std::runtime_error& e) {
        throw usage_error(std::string("model '") + path + "' (GGUF tokenizer): " + e.what());
      }
      return m;
    }
  }
  m.format = "llama2c";
  try {
    m.llama2c_file = std::make_unique<llama2c::model>(llama2c::model::load(path));
  } catch (const std::runtime_error& e) {
    throw usage_error(std::string("model (llama2.c checkpoint): ") + e.what());
  }
  m.weights = llama2c::to_weights(*m.llama2c_file);
  m.bos = llama2c::tokenizer::bos_id;
  if (!tokenizer_path.empty()) try {
      m.tok = llama2c::tokenizer::load(tokenizer_path, m.llama2c_file->cfg().vocab_size);
    } catch (const std::runtime_error& e) {
      throw usage_error(std::string("tokenizer (llama2.c tokenizer.bin): ") + e.what());
    }
  return m;
}

/// `count` sequences of `length` tokens sampled (temperature 1) from the float model, BOS first,
/// seeds seed_base + i.
inline std::vector<std::vector<std::int32_t>> sampled_sequences(const loaded_model& m, std::size_t count,
                                                                std::size_t length, std::uint64_t seed_base) {
  std::vector<std::vector<std::int32_t>> out;
  const std::vector<std::int32_t> bos = {m.bos};
  for (std::size_t s = 0; s < count; ++s)
    out.push_back(singlequant::generate(m.weights, bos, length - 1, {.temperature = 1.0, .seed = seed_base + s}));
  return out;
}

/// The text tokenised as one stream (no BOS, no dummy-prefix per window), cut into windows of
/// length - 1 tokens, each prefixed by BOS (llama.cpp's perplexity convention); at most `max_windows`.
inline std::vector<std::vector<std::int32_t>> text_windows(const loaded_model& m, const std::string& text,
                                                           const std::string& path, std::size_t length,
                                                           std::size_t max_windows) {
  if (!m.tok) throw usage_error("'" + path + "': a text file needs the model's tokenizer (--tokenizer FILE)");
  const std::vector<int> ids = m.tok->encode(text, false);
  const std::size_t per = length - 1;
  const std::size_t windows = std::min(ids.size() / per, max_windows);
  if (windows == 0)
    throw usage_error("'" + path + "': " + std::to_string(ids.size()) + " tokens, fewer than one window of " +
                      std::to_string(per) + " (lower --length)");
  std::vector<std::vector<std::int32_t>> out(windows);
  for (std::size_t w = 0; w < windows; ++w) {
    out[w].push_back(m.bos);
    out[w].insert(out[w].end(), ids.begin() + std::ptrdiff_t(w * per), ids.begin() + std::ptrdiff_t((w + 1) * per));
  }
  return out;
}

}  // namespace singlequant_tools::cli
