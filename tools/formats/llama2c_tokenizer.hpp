// llama2c_tokenizer.hpp — reader of llama2.c's tokenizer.bin: int32 max_token_length, then per token
// a float32 score, an int32 byte length and the bytes, to the end of the file. Gives the common
// singlequant_tools::tokenizer (tokenizer.hpp) with llama2.c's fixed ids: 0 <unk>, 1 BOS, 2 EOS,
// 3..258 the byte fallback <0x00>..<0xFF>.
//
// Errors: std::runtime_error naming the file and the sizes. Namespace `llama2c`.
#pragma once

#include <formats/llama2c_model.hpp>
#include <formats/tokenizer.hpp>

namespace llama2c {

class tokenizer : public singlequant_tools::tokenizer {
 public:
  static constexpr int unk_id = 0;
  static constexpr int bos_id = 1;
  static constexpr int eos_id = 2;
  static constexpr int byte_fallback_offset = 3;  // id of <0x00>; <0xXX> has id XX + 3

  // If expected_vocab_size >= 0, the number of entries must match it (use the model's vocab_size).
  static tokenizer load(const std::string& path, int expected_vocab_size = -1) {
    return load_bytes(detail::read_file_bytes(path), path, expected_vocab_size);
  }
  // The same from bytes already in memory; `name` stands for the file in messages.
  static tokenizer load_bytes(std::span<const char> bytes, const std::string& name = "<memory>",
                              int expected_vocab_size = -1) {
    const std::string& path = name;
    detail::byte_reader reader(bytes, path);
    const std::int32_t max_token_length = reader.read<std::int32_t>();
    if (max_token_length <= 0) detail::fail(path, "invalid max_token_length " + std::to_string(max_token_length));
    std::vector<std::string> pieces;
    std::vector<float> scores;
    while (reader.remaining() > 0) {
      const float score = reader.read<float>();
      const std::int32_t length = reader.read<std::int32_t>();
      if (length < 0)
        detail::fail(path, "negative piece length " + std::to_string(length) + " for token " +
                               std::to_string(pieces.size()));
      scores.push_back(score);
      pieces.push_back(reader.read_string(std::size_t(length)));
    }
    if (expected_vocab_size >= 0 && pieces.size() != std::size_t(expected_vocab_size))
      detail::fail(path, "holds " + std::to_string(pieces.size()) + " tokens but the model has vocab_size " +
                             std::to_string(expected_vocab_size));
    if (pieces.size() < std::size_t(byte_fallback_offset + 256))
      detail::fail(path, "holds " + std::to_string(pieces.size()) +
                             " tokens, fewer than the 259 special + byte-fallback tokens");
    tokenizer t;
    static_cast<singlequant_tools::tokenizer&>(t) =
        singlequant_tools::tokenizer::from_pieces(std::move(pieces), std::move(scores), bos_id, eos_id, unk_id);
    t.max_token_length_ = max_token_length;
    return t;
  }

  int max_token_length() const { return max_token_length_; }

 private:
  tokenizer() = default;
  int max_token_length_ = 0;
};

}  // namespace llama2c
