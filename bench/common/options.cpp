#include "options.hpp"

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <utility>

namespace veloq::bench {

Options::Options(std::string program, std::string description)
    : program_(std::move(program)), description_(std::move(description)) {
  add_flag("--help", &help_, "print this text and exit");
  add_flag("--quick", &quick_, "short run (fewer iterations and runs), as `meson test --benchmark` uses");
  add_value("--json", "PATH", &json_path_, "also write the results as JSON to PATH");
  add_value("--runs", "N", &runs_, "runs to take the median over (default: the binary's own)");
  add_value("--only", "WHICH", &only_, "measure only 'veloq' or only 'baseline' (for profiling)");
}

void Options::add_flag(std::string name, bool* target, std::string help) {
  specs_.push_back(Spec{std::move(name), {}, std::move(help), target, nullptr, nullptr});
}

void Options::add_value(std::string name, std::string value_name, unsigned* target, std::string help) {
  specs_.push_back(Spec{std::move(name), std::move(value_name), std::move(help), nullptr, target, nullptr});
}

void Options::add_value(std::string name, std::string value_name, std::string* target, std::string help) {
  specs_.push_back(Spec{std::move(name), std::move(value_name), std::move(help), nullptr, nullptr, target});
}

const Options::Spec* Options::find(const std::string& name) const noexcept {
  for (const Spec& spec : specs_)
    if (spec.name == name) return &spec;
  return nullptr;
}

void Options::store(const Spec& spec, const std::string& value) {
  if (spec.text != nullptr) {
    *spec.text = value;
    return;
  }
  unsigned parsed = 0;
  auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), parsed);
  if (error != std::errc() || end != value.data() + value.size())
    fail(spec.name + " wants a non-negative integer, not '" + value + "'");
  *spec.number = parsed;
}

bool Options::parse(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string inline_value;
    bool has_inline_value = false;
    if (auto eq = arg.find('='); eq != std::string::npos && arg.rfind("--", 0) == 0) {
      inline_value = arg.substr(eq + 1);
      arg.resize(eq);
      has_inline_value = true;
    }
    const Spec* spec = find(arg);
    if (spec == nullptr) fail("unknown argument '" + arg + "'");
    if (spec->flag != nullptr) {
      if (has_inline_value) fail(arg + " takes no value");
      *spec->flag = true;
      continue;
    }
    if (has_inline_value) {
      store(*spec, inline_value);
    } else {
      if (i + 1 >= argc) fail(arg + " needs a value (" + spec->value_name + ")");
      store(*spec, argv[++i]);
    }
  }
  if (!only_.empty() && only_ != "veloq" && only_ != "baseline")
    fail("--only wants 'veloq' or 'baseline', not '" + only_ + "'");
  if (help_) {
    print_usage(false);
    return false;
  }
  return true;
}

unsigned Options::runs(unsigned full, unsigned quick) const noexcept {
  if (runs_ != 0) return runs_;
  return quick_ ? quick : full;
}

void Options::print_usage(bool to_stderr) const {
  std::FILE* out = to_stderr ? stderr : stdout;
  std::fprintf(out, "usage: %s [options]\n\n%s\n\noptions:\n", program_.c_str(), description_.c_str());
  for (const Spec& spec : specs_) {
    std::string left = spec.name + (spec.value_name.empty() ? "" : " " + spec.value_name);
    std::fprintf(out, "  %-18s %s\n", left.c_str(), spec.help.c_str());
  }
  std::fflush(out);
}

void Options::fail(const std::string& message) const {
  std::fprintf(stderr, "%s: %s\n\n", program_.c_str(), message.c_str());
  print_usage(true);
  std::exit(2);
}

}  // namespace veloq::bench
