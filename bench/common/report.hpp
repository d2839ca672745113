// Report: the results of one benchmark binary, printed as a table for people
// and written as the contract's JSON for the suite.
//
// A Result is one row: a Veloq figure next to its baseline. The ratio is
// always computed here, by the contract's convention (above 1 means Veloq
// wins), and the goal is a Goal, not free text, so the text written to the
// JSON ("ratio >= 0.33 and veloq >= 30M/s") and the verdict ("met") come from
// the same numbers.
//
//   veloq::bench::Report report("veloq-bench-spawn");
//   report.add({.name = "spawn_join", .metric = "tasks/s", .veloq = 3.1e7,
//               .baseline_name = "bare coroutine loop", .baseline = 5.0e7,
//               .goal = Goal().ratio_at_least(0.33).veloq_at_least(30e6, "/s"), .runs = 5});
//   return report.finish(options);   // table on stdout, JSON if --json
#pragma once

#include "options.hpp"

#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace veloq::bench {

// A conjunction of bounds on a row's "ratio" or "veloq" field, written in the
// grammar bench/suite reads: clauses joined by "and", numbers with k/M/G.
class Goal {
 public:
  Goal& ratio_at_least(double bound) { return add("ratio", ">=", bound, ""); }
  Goal& veloq_at_least(double bound, std::string unit) { return add("veloq", ">=", bound, std::move(unit)); }
  Goal& veloq_at_most(double bound, std::string unit) { return add("veloq", "<=", bound, std::move(unit)); }
  Goal& veloq_below(double bound, std::string unit) { return add("veloq", "<", bound, std::move(unit)); }

  bool empty() const noexcept { return clauses_.empty(); }
  std::string text() const;
  // Whether every clause holds; a ratio clause fails when there is no ratio.
  bool judge(double veloq, std::optional<double> ratio) const noexcept;

 private:
  struct Clause {
    std::string field;
    std::string op;
    double bound;
    std::string unit;
  };
  Goal& add(std::string field, std::string op, double bound, std::string unit) {
    clauses_.push_back(Clause{std::move(field), std::move(op), bound, std::move(unit)});
    return *this;
  }
  std::vector<Clause> clauses_;
};

// One value of a row's optional "extra" object.
using ExtraValue = std::variant<double, std::string>;

struct Result {
  std::string name;    // the JSON "case"
  std::string metric;  // "tasks/s", "ns/round trip", ...
  double veloq = 0;
  std::string baseline_name;      // empty: no baseline
  std::optional<double> baseline{};
  bool higher_is_better = true;
  Goal goal;
  unsigned runs = 0;
  std::vector<std::pair<std::string, ExtraValue>> extra{};

  // veloq/baseline, or baseline/veloq when lower is better; none without a positive baseline.
  std::optional<double> ratio() const noexcept;
};

class Report {
 public:
  explicit Report(std::string bench) : bench_(std::move(bench)) {}

  void add(Result result) { results_.push_back(std::move(result)); }
  const std::vector<Result>& results() const noexcept { return results_; }

  // Prints the table, writes the JSON when asked, and returns the exit status
  // (1 only if the JSON could not be written; a missed goal is a figure, not a failure).
  int finish(const Options& options) const;

  void print_table() const;
  // Throws std::runtime_error when `path` cannot be written.
  void write_json(const std::string& path) const;

 private:
  std::string bench_;
  std::vector<Result> results_;
};

// "31.2M", "850k", "12.5": three significant figures with a k/M/G suffix.
std::string human_number(double value);

}  // namespace veloq::bench
