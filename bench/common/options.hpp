// Options: the command line every Veloq benchmark binary accepts.
//
// Each binary gets --help, --quick, --json PATH, --runs N and --only WHICH for free and adds
// its own flags and values before calling parse(). Unknown arguments and bad
// values are reported on stderr with the usage text and end the process with
// status 2, so a typo never silently runs the wrong benchmark.
//
//   veloq::bench::Options options("veloq-bench-spawn", "Spawn + join of an empty task ...");
//   unsigned shards = 1;
//   options.add_value("--shards", "N", &shards, "shards that spawn at once (1 or 2)");
//   if (!options.parse(argc, argv)) return 0;          // --help was printed
//   unsigned runs = options.runs(/*full=*/7, /*quick=*/3);
#pragma once

#include <string>
#include <vector>

namespace veloq::bench {

class Options {
 public:
  // `description` is printed under the usage line by --help; it should say
  // what is measured, against which baseline, and how the figures are made.
  Options(std::string program, std::string description);

  // A switch: `*target` becomes true when `name` is given.
  void add_flag(std::string name, bool* target, std::string help);
  // A value: `name VALUE` (or `name=VALUE`) stores VALUE into `*target`.
  void add_value(std::string name, std::string value_name, unsigned* target, std::string help);
  void add_value(std::string name, std::string value_name, std::string* target, std::string help);

  // Parses the command line. Returns false after printing --help (the caller
  // exits 0); exits with status 2 on a usage error.
  bool parse(int argc, char** argv);

  bool quick() const noexcept { return quick_; }
  // Empty unless --json PATH was given.
  const std::string& json_path() const noexcept { return json_path_; }
  // Runs to take the median over: --runs if given, else `full` or, with --quick, `quick`.
  unsigned runs(unsigned full, unsigned quick) const noexcept;
  // --only veloq / --only baseline measures one side alone (for profiling);
  // rows then carry no figure for the other side.
  bool run_veloq() const noexcept { return only_ != "baseline"; }
  bool run_baseline() const noexcept { return only_ != "veloq"; }
  // Picks the full or the --quick value of a size (iterations, seconds, ...).
  template <typename T>
  T pick(T full, T quick) const noexcept {
    return quick_ ? quick : full;
  }

  const std::string& program() const noexcept { return program_; }
  void print_usage(bool to_stderr) const;
  // Reports a bad value of an option the binary checks itself, then exits 2.
  [[noreturn]] void fail(const std::string& message) const;

 private:
  struct Spec {
    std::string name;
    std::string value_name;  // empty for a flag
    std::string help;
    bool* flag = nullptr;
    unsigned* number = nullptr;
    std::string* text = nullptr;
  };

  const Spec* find(const std::string& name) const noexcept;
  void store(const Spec& spec, const std::string& value);

  std::string program_;
  std::string description_;
  std::vector<Spec> specs_;
  bool help_ = false;
  bool quick_ = false;
  unsigned runs_ = 0;  // 0: the binary's default
  std::string json_path_;
  std::string only_;
};

}  // namespace veloq::bench
