// args.hpp — the `singlequant` command's argument parser and its error type.
//
// A subcommand declares its options (name, value or flag, help line); parse() rejects unknown options,
// missing values, repeated options and bad numbers with a usage_error, which main() prints on stderr
// and turns into exit code 2 (as every bad input).
#pragma once

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace singlequant_tools::cli {

/// Bad command line or bad input: the message goes to stderr, the exit code is 2.
struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct option_spec {
  std::string name;  ///< "--length"
  std::string value; ///< "N" (empty: a flag)
  std::string help;
};

class arguments {
 public:
  arguments(std::string command, std::string synopsis, std::string description, std::vector<option_spec> options)
      : command_(std::move(command)), synopsis_(std::move(synopsis)), description_(std::move(description)),
        options_(std::move(options)) {}

  /// Parses argv[first..argc). Returns false when --help was asked for (help already printed).
  bool parse(int argc, char** argv, int first) {
    for (int i = first; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "--help" || arg == "-h") {
        print_help(stdout);
        return false;
      }
      if (arg.size() > 1 && arg[0] == '-') {
        const option_spec* spec = find(arg);
        if (spec == nullptr) throw usage_error(command_ + ": unknown option '" + arg + "' (see --help)");
        if (values_.count(spec->name) != 0) throw usage_error(command_ + ": option " + arg + " given twice");
        if (spec->value.empty()) {
          values_[spec->name] = "1";
        } else {
          if (i + 1 >= argc) throw usage_error(command_ + ": option " + arg + " needs a value " + spec->value);
          values_[spec->name] = argv[++i];
        }
      } else {
        positional_.push_back(arg);
      }
    }
    return true;
  }

  void print_help(std::FILE* out) const {
    std::fprintf(out, "usage: singlequant %s %s\n\n%s\n\noptions:\n", command_.c_str(), synopsis_.c_str(),
                 description_.c_str());
    for (const auto& o : options_) {
      const std::string left = o.name + (o.value.empty() ? "" : " " + o.value);
      std::fprintf(out, "  %-22s %s\n", left.c_str(), o.help.c_str());
    }
    std::fprintf(out, "  %-22s %s\n", "-h, --help", "this help");
  }

  const std::vector<std::string>& positional() const { return positional_; }
  /// Exactly `n` positional arguments, named in the message.
  void expect_positional(std::size_t n, const char* what) const {
    if (positional_.size() != n)
      throw usage_error(command_ + ": expected " + what + " (got " + std::to_string(positional_.size()) +
                        " positional arguments; see --help)");
  }
  bool has(const std::string& name) const { return values_.count(name) != 0; }
  std::string text(const std::string& name, const std::string& fallback = "") const {
    const auto it = values_.find(name);
    return it == values_.end() ? fallback : it->second;
  }
  /// An integer option in [lo, hi].
  std::uint64_t number(const std::string& name, std::uint64_t fallback, std::uint64_t lo, std::uint64_t hi) const {
    const auto it = values_.find(name);
    if (it == values_.end()) return fallback;
    std::uint64_t v = 0;
    const std::string& s = it->second;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || v < lo || v > hi)
      throw usage_error(command_ + ": " + name + " '" + s + "' is not an integer in [" + std::to_string(lo) + ", " +
                        std::to_string(hi) + "]");
    return v;
  }
  /// A real option in [lo, hi].
  double real(const std::string& name, double fallback, double lo, double hi) const {
    const auto it = values_.find(name);
    if (it == values_.end()) return fallback;
    const std::string& s = it->second;
    double v = 0;
    std::size_t used = 0;
    try {
      v = std::stod(s, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != s.size() || s.empty() || !(v >= lo && v <= hi))
      throw usage_error(command_ + ": " + name + " '" + s + "' is not a number in [" + std::to_string(lo) + ", " +
                        std::to_string(hi) + "]");
    return v;
  }
  const std::string& command() const { return command_; }

 private:
  const option_spec* find(const std::string& name) const {
    for (const auto& o : options_)
      if (o.name == name) return &o;
    return nullptr;
  }

  std::string command_, synopsis_, description_;
  std::vector<option_spec> options_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

/// Comma-separated list ("rtn,hadamard") into its items; empty items are an error.
inline std::vector<std::string> split_list(const std::string& s, const std::string& what) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = s.find(',', start);
    const std::string item = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (item.empty()) throw usage_error(what + ": empty item in '" + s + "'");
    out.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace singlequant_tools::cli
