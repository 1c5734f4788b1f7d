// singlequant/model/evaluate.hpp - scoring a model against full precision on given sequences, and
// sampling text from a model.
//
// For each sequence of T tokens (run from position 0), with P_t = softmax(reference logits at t)
// and Q_t = softmax(candidate logits at t):
//   perplexity           = exp(mean over t < T - 1 of -log Q_t[token_{t+1}])   (candidate)
//   reference_perplexity = the same with P
//   kl                   = mean over every position t of KL(P_t || Q_t) = sum_i P_t,i (log P_t,i - log Q_t,i)
//   top1                 = fraction of positions with argmax Q_t == argmax P_t (ties: lowest id)
// Means are over all positions of all sequences (in double, reduced in sequence order, so the same
// for any thread count). Models are anything that maps tokens to logits (tokens x vocab): the
// overloads take llama_weights (float forward) and quantized_model.
#ifndef SINGLEQUANT_MODEL_EVALUATE_HPP
#define SINGLEQUANT_MODEL_EVALUATE_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "../config.hpp"
#include "../detail/float_gemm.hpp"
#include "../detail/random.hpp"
#include "forward.hpp"
#include "llama.hpp"
#include "quantize.hpp"

SINGLEQUANT_BEGIN_NAMESPACE

/// Scores of a candidate model against a reference (see the file comment).
struct evaluation {
  double perplexity = 0;            ///< candidate
  double reference_perplexity = 0;  ///< reference
  double kl = 0;                    ///< mean per-position KL(P_reference || P_candidate), nats
  double top1 = 0;                  ///< top-1 agreement, 0..1
  std::size_t positions = 0;        ///< positions scored for KL and top-1
  std::size_t predictions = 0;      ///< next-token predictions scored for the perplexities
};

/// Sums over one sequence (evaluation before the division by the counts).
struct evaluation_sums {
  double nll = 0, reference_nll = 0, kl = 0;
  std::size_t agree = 0, positions = 0, predictions = 0;
  void add(const evaluation_sums& o) noexcept {
    nll += o.nll;
    reference_nll += o.reference_nll;
    kl += o.kl;
    agree += o.agree;
    positions += o.positions;
    predictions += o.predictions;
  }
  [[nodiscard]] evaluation finish() const noexcept {
    evaluation e;
    e.positions = positions;
    e.predictions = predictions;
    if (positions > 0) {
      e.kl = kl / static_cast<double>(positions);
      e.top1 = static_cast<double>(agree) / static_cast<double>(positions);
    }
    if (predictions > 0) {
      e.perplexity = std::exp(nll / static_cast<double>(predictions));
      e.reference_perplexity = std::exp(reference_nll / static_cast<double>(predictions));
    }
    return e;
  }
};

/// The sums of one sequence from its logits (tokens x vocab each, row-major). NaN logits propagate
/// into the sums. Errors: sizes that do not match.
[[nodiscard]] inline evaluation_sums score_sequence(std::span<const float> reference, std::span<const float> candidate,
                                                    std::span<const std::int32_t> tokens, std::size_t vocab) {
  constexpr const char* fn = "score_sequence";
  const std::size_t T = tokens.size();
  detail::check(vocab > 0 && reference.size() == T * vocab && candidate.size() == T * vocab, fn, "logits of ",
                reference.size(), " and ", candidate.size(), " values for ", T, " tokens x vocab ", vocab);
  evaluation_sums s;
  std::vector<double> log_p(vocab), log_q(vocab);
  auto log_softmax = [&](const float* z, std::vector<double>& out) {
    double peak = -std::numeric_limits<double>::infinity();
    for (std::size_t i = 0; i < vocab; ++i) peak = std::max(peak, static_cast<double>(z[i]));
    double total = 0;
    for (std::size_t i = 0; i < vocab; ++i) total += std::exp(static_cast<double>(z[i]) - peak);
    const double log_total = std::log(total) + peak;
    for (std::size_t i = 0; i < vocab; ++i) out[i] = static_cast<double>(z[i]) - log_total;
  };
  for (std::size_t t = 0; t < T; ++t) {
    const float* zp = reference.data() + t * vocab;
    const float* zq = candidate.data() + t * vocab;
    log_softmax(zp, log_p);
    log_softmax(zq, log_q);
    double kl = 0;
    for (std::size_t i = 0; i < vocab; ++i) kl += std::exp(log_p[i]) * (log_p[i] - log_q[i]);
    s.kl += kl;
    const auto best = [&](const float* z) { return static_cast<std::size_t>(std::max_element(z, z + vocab) - z); };
    s.agree += best(zp) == best(zq) ? 1u : 0u;
    ++s.positions;
    if (t + 1 < T) {
      const auto next = static_cast<std::size_t>(tokens[t + 1]);
      detail::check(next < vocab, fn, "token ", tokens[t + 1], " outside the vocabulary of ", vocab);
      s.nll -= log_q[next];
      s.reference_nll -= log_p[next];
      ++s.predictions;
    }
  }
  return s;
}

/// Scores candidate against reference on the sequences (each run from position 0), where
/// reference_logits(tokens) and candidate_logits(tokens) return tokens x vocab logits. Sequences run
/// on `threads` threads (0: every core); the result is the same for any count.
template <class Reference, class Candidate>
[[nodiscard]] evaluation evaluate_logits(Reference&& reference_logits, Candidate&& candidate_logits,
                                         std::span<const std::vector<std::int32_t>> sequences, std::size_t vocab,
                                         std::size_t threads = 0) {
  std::vector<evaluation_sums> sums(sequences.size());
  detail::parallel_for(sequences.size(), threads, [&](std::size_t i) {
    const std::vector<float> p = reference_logits(std::span<const std::int32_t>(sequences[i]));
    const std::vector<float> q = candidate_logits(std::span<const std::int32_t>(sequences[i]));
    sums[i] = score_sequence(p, q, sequences[i], vocab);
  });
  evaluation_sums total;
  for (const auto& s : sums) total.add(s);
  return total.finish();
}

/// A W4A4 model against the float32 model it came from.
[[nodiscard]] inline evaluation evaluate(const llama_weights& reference, const quantized_model& candidate,
                                         std::span<const std::vector<std::int32_t>> sequences, std::size_t threads = 0) {
  check_weights(reference, "evaluate");
  detail::check(candidate.config().vocab_size == reference.config.vocab_size, "evaluate", "vocabularies of ",
                reference.config.vocab_size, " and ", candidate.config().vocab_size);
  return evaluate_logits([&](std::span<const std::int32_t> t) { return forward_logits(reference, t); },
                         [&](std::span<const std::int32_t> t) { return candidate.logits(t); }, sequences,
                         reference.config.vocab_size, threads);
}
/// Two float32 models (e.g. a transformed copy against the original).
[[nodiscard]] inline evaluation evaluate(const llama_weights& reference, const llama_weights& candidate,
                                         std::span<const std::vector<std::int32_t>> sequences, std::size_t threads = 0) {
  check_weights(reference, "evaluate");
  check_weights(candidate, "evaluate");
  detail::check(candidate.config.vocab_size == reference.config.vocab_size, "evaluate", "vocabularies of ",
                reference.config.vocab_size, " and ", candidate.config.vocab_size);
  return evaluate_logits([&](std::span<const std::int32_t> t) { return forward_logits(reference, t); },
                         [&](std::span<const std::int32_t> t) { return forward_logits(candidate, t); }, sequences,
                         reference.config.vocab_size, threads);
}

/// Sampling parameters of generate().
struct sampling_options {
  double temperature = 1.0;  ///< 0: greedy (argmax, lowest id on ties)
  std::uint64_t seed = 0;    ///< splitmix64 seed: the same tokens on every platform
};

/// The prompt followed by `count` tokens sampled from the float32 model (softmax(logits / T), one
/// uniform draw per token). Errors: empty prompt, prompt + count > max_seq_len, bad temperature.
[[nodiscard]] inline std::vector<std::int32_t> generate(const llama_weights& w, std::span<const std::int32_t> prompt,
                                                        std::size_t count, const sampling_options& options = {}) {
  constexpr const char* fn = "generate";
  check_weights(w, fn);
  const std::size_t vocab = w.config.vocab_size;
  detail::check(!prompt.empty(), fn, "empty prompt");
  detail::check(prompt.size() <= w.config.max_seq_len && count <= w.config.max_seq_len - prompt.size(), fn,
                "prompt of ", prompt.size(), " + ", count, " tokens exceeds max_seq_len ", w.config.max_seq_len);
  detail::check(std::isfinite(options.temperature) && options.temperature >= 0, fn, "temperature ",
                options.temperature, " must be finite and >= 0");
  std::vector<std::int32_t> out(prompt.begin(), prompt.end());
  kv_cache cache(w.config, prompt.size() + count);
  std::vector<float> logits(vocab);
  const matrix_view<float> last(logits.data(), 1, vocab);
  forward(w, prompt, cache, last);
  detail::splitmix64 rng{options.seed};
  std::vector<double> p(vocab);
  for (std::size_t i = 0; i < count; ++i) {
    std::size_t next = static_cast<std::size_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    if (options.temperature > 0) {
      const double peak = static_cast<double>(logits[next]);
      double total = 0;
      for (std::size_t v = 0; v < vocab; ++v)
        total += p[v] = std::exp((static_cast<double>(logits[v]) - peak) / options.temperature);
      double u = static_cast<double>(rng.next() >> 11) * 0x1.0p-53 * total;
      for (std::size_t v = 0; v < vocab; ++v) {
        u -= p[v];
        if (u < 0) {
          next = v;
          break;
        }
      }
    }
    out.push_back(static_cast<std::int32_t>(next));
    if (i + 1 < count) forward(w, std::span<const std::int32_t>(&out.back(), 1), cache, last);
  }
  return out;
}

SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_MODEL_EVALUATE_HPP
