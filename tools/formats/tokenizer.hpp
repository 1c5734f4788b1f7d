// tokenizer.hpp — the tokenizer every model format hands the `singlequant` command: a
// SentencePiece-style vocabulary (pieces, scores, BOS/EOS ids, <0xNN> byte fallback) with encode and
// decode. The llama2.c tokenizer.bin loader (llama2c_tokenizer.hpp) and the GGUF tokenizer.ggml.*
// reader both produce it.
//
// Conventions: pieces hold their bytes with SentencePiece's U+2581 '▁' already replaced by a space
// (llama2.c's export does this; `from_pieces` does it for GGUF's raw pieces). A vocabulary without a
// " " piece is byte level (tok_bytes512.bin): encoding is BOS + one byte token per byte, no dummy
// prefix, no merges.
//
// Namespace `singlequant_tools` (the tool side; the library is `singlequant`).
#pragma once

#include <array>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace singlequant_tools {

class tokenizer {
 public:
  tokenizer() = default;

  /// A tokenizer over `pieces` (spaces as ' ' or U+2581) and their merge `scores`; `bos` / `eos`
  /// are ids in range. Every <0xNN> piece becomes the byte fallback of byte NN; a byte without one
  /// encodes to `unk`. Throws std::runtime_error on sizes that disagree or ids out of range.
  static tokenizer from_pieces(std::vector<std::string> pieces, std::vector<float> scores, int bos, int eos,
                               int unk = 0) {
    if (pieces.size() != scores.size())
      throw std::runtime_error("tokenizer: " + std::to_string(pieces.size()) + " pieces but " +
                               std::to_string(scores.size()) + " scores");
    if (pieces.size() > std::size_t(std::numeric_limits<int>::max()))
      throw std::runtime_error("tokenizer: " + std::to_string(pieces.size()) + " pieces, too many");
    const int n = int(pieces.size());
    for (const auto& [id, name] : {std::pair{bos, "bos"}, std::pair{eos, "eos"}, std::pair{unk, "unk"}})
      if (id < 0 || id >= n)
        throw std::runtime_error(std::string("tokenizer: ") + name + " id " + std::to_string(id) +
                                 " outside the vocabulary of " + std::to_string(n));
    tokenizer t;
    t.bos_ = bos;
    t.eos_ = eos;
    t.unk_ = unk;
    static constexpr std::string_view lower_block = "\xE2\x96\x81";  // U+2581
    for (std::string& p : pieces) {
      if (p.find(lower_block) == std::string::npos) continue;
      std::string spaced;  // rebuilt rather than replace()d in place (g++ 12 -O3 warns falsely there)
      for (std::size_t i = 0; i < p.size();) {
        if (std::string_view(p).substr(i, lower_block.size()) == lower_block) {
          spaced += ' ';
          i += lower_block.size();
        } else {
          spaced += p[i++];
        }
      }
      p = std::move(spaced);
    }
    t.pieces_ = std::move(pieces);
    t.scores_ = std::move(scores);
    t.byte_ids_.fill(-1);
    for (std::size_t id = 0; id < t.pieces_.size(); ++id) {
      t.lookup_.emplace(t.pieces_[id], int(id));  // first id wins for duplicate pieces
      if (const int byte = parse_byte_piece(t.pieces_[id]); byte >= 0 && t.byte_ids_[std::size_t(byte)] < 0)
        t.byte_ids_[std::size_t(byte)] = int(id);
      if (t.pieces_[id].find(' ', 1) != std::string::npos) t.space_inside_ = true;
    }
    return t;
  }

  int vocab_size() const { return int(pieces_.size()); }
  int bos() const { return bos_; }
  int eos() const { return eos_; }
  const std::string& piece(int id) const { return pieces_.at(std::size_t(id)); }
  float score(int id) const { return scores_.at(std::size_t(id)); }
  /// Id of an exact piece, or -1.
  int find(std::string_view piece_text) const {
    const auto it = lookup_.find(std::string(piece_text));
    return it == lookup_.end() ? -1 : it->second;
  }
  /// No " " piece: SentencePiece BPE needs one for its dummy prefix, byte-level vocabularies lack it.
  bool is_byte_level() const { return find(" ") < 0; }

  /// Bytes of `token` as llama2.c's run.c prints them: a piece that follows BOS loses its leading
  /// space, a <0xNN> piece becomes the byte. Throws std::out_of_range for an id outside the vocabulary.
  std::string decode(int prev_token, int token) const {
    std::string_view text = piece(token);
    if (prev_token == bos_ && !text.empty() && text.front() == ' ') text.remove_prefix(1);
    if (const int byte = parse_byte_piece(text); byte >= 0) return std::string(1, char(byte));
    return std::string(text);
  }
  /// Concatenated decode of `tokens`, the first following `prev_token`.
  std::string decode(std::span<const int> tokens, int prev_token = -1) const {
    std::string text;
    for (const int token : tokens) {
      text += decode(prev_token, token);
      prev_token = token;
    }
    return text;
  }

  /// Byte-level encoding: optional BOS, then the byte token of each byte; no prefix, no merges.
  std::vector<int> encode_bytes(std::string_view text, bool add_bos = true, bool add_eos = false) const {
    std::vector<int> ids;
    ids.reserve(text.size() + 2);
    if (add_bos) ids.push_back(bos_);
    for (const char ch : text) ids.push_back(byte_id(ch));
    if (add_eos) ids.push_back(eos_);
    return ids;
  }

  /// SentencePiece-style BPE as run.c's encode(): dummy-prefix space, one token per UTF-8 code point
  /// (byte fallback when the code point is not a piece), then repeatedly merge the adjacent pair whose
  /// concatenation is the highest-scoring piece (leftmost on ties) until no pair merges.
  /// When no piece holds a space after its first byte (SentencePiece's split_by_whitespace), no merge
  /// crosses a space, so each " word" is merged on its own: the same ids, linear in the text length.
  std::vector<int> encode_bpe(std::string_view text, bool add_bos = true, bool add_eos = false) const {
    std::vector<int> ids;
    if (add_bos) ids.push_back(bos_);
    if (!text.empty()) {
      // The dummy prefix goes through the same lookup as the text, so a vocabulary without " "
      // falls back to the byte token.
      const std::string prefixed = " " + std::string(text);
      std::vector<int> pieces;
      std::size_t i = 0;
      while (i < prefixed.size()) {
        std::size_t end = i + 1;  // code point = lead byte + continuation bytes (at most 4)
        while (end < prefixed.size() && end - i < 4 && (static_cast<unsigned char>(prefixed[end]) & 0xC0) == 0x80)
          ++end;
        if (!space_inside_ && prefixed[i] == ' ' && !pieces.empty()) {
          merge_pairs(pieces);
          ids.insert(ids.end(), pieces.begin(), pieces.end());
          pieces.clear();
        }
        const std::string_view code_point(prefixed.data() + i, end - i);
        if (const int id = find(code_point); id >= 0) {
          pieces.push_back(id);
        } else {
          for (const char ch : code_point) pieces.push_back(byte_id(ch));
        }
        i = end;
      }
      merge_pairs(pieces);
      ids.insert(ids.end(), pieces.begin(), pieces.end());
    }
    if (add_eos) ids.push_back(eos_);
    return ids;
  }

  /// encode_bytes for byte-level vocabularies, encode_bpe otherwise.
  std::vector<int> encode(std::string_view text, bool add_bos = true, bool add_eos = false) const {
    return is_byte_level() ? encode_bytes(text, add_bos, add_eos) : encode_bpe(text, add_bos, add_eos);
  }

  /// "<0xXX>" -> XX, anything else -> -1.
  static int parse_byte_piece(std::string_view p) {
    if (p.size() != 6 || p.substr(0, 3) != "<0x" || p[5] != '>') return -1;
    int value = 0;
    const auto [end, error] = std::from_chars(p.data() + 3, p.data() + 5, value, 16);
    return (error == std::errc() && end == p.data() + 5) ? value : -1;
  }

 private:
  int byte_id(char ch) const {
    const int id = byte_ids_[static_cast<unsigned char>(ch)];
    return id >= 0 ? id : unk_;
  }

  void merge_pairs(std::vector<int>& ids) const {
    std::string candidate;
    while (ids.size() >= 2) {
      float best_score = -std::numeric_limits<float>::infinity();
      int best_id = -1;
      std::size_t best_index = 0;
      for (std::size_t i = 0; i + 1 < ids.size(); ++i) {
        candidate = pieces_[std::size_t(ids[i])];
        candidate += pieces_[std::size_t(ids[i + 1])];
        const int id = find(candidate);
        if (id >= 0 && (best_id < 0 || scores_[std::size_t(id)] > best_score)) {
          best_score = scores_[std::size_t(id)];
          best_id = id;
          best_index = i;
        }
      }
      if (best_id < 0) break;
      ids[best_index] = best_id;
      ids.erase(ids.begin() + std::ptrdiff_t(best_index) + 1);
    }
  }

  int bos_ = 1, eos_ = 2, unk_ = 0;
  bool space_inside_ = false;  // some piece holds a space after its first byte: merge the whole text
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::array<int, 256> byte_ids_{};
  std::unordered_map<std::string, int> lookup_;
};

}  // namespace singlequant_tools
