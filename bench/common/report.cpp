#include "report.hpp"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <stdexcept>

namespace veloq::bench {

namespace {

// A value brought to the G/M/k unit that keeps it readable (k from 10,000 up).
struct Scaled {
  double value;
  const char* suffix;
};

Scaled scale_si(double value) {
  if (std::fabs(value) >= 1e9) return {value / 1e9, "G"};
  if (std::fabs(value) >= 1e6) return {value / 1e6, "M"};
  if (std::fabs(value) >= 1e4) return {value / 1e3, "k"};
  return {value, ""};
}

// A bound as the suite's goal grammar reads it: "30M", "0.33", "15".
std::string goal_number(double value) {
  auto [scaled, suffix] = scale_si(value);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%g%s", scaled, suffix);
  return buf;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

// JSON has no NaN or infinity: an unmeasurable number is null.
std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

}  // namespace

std::string Goal::text() const {
  std::string out;
  for (const Clause& c : clauses_) {
    if (!out.empty()) out += " and ";
    out += c.field + " " + c.op + " " + goal_number(c.bound);
    if (!c.unit.empty()) out += (c.unit[0] == '/' ? "" : " ") + c.unit;
  }
  return out;
}

bool Goal::judge(double veloq, std::optional<double> ratio) const noexcept {
  for (const Clause& c : clauses_) {
    double value = 0;
    if (c.field == "ratio") {
      if (!ratio) return false;
      value = *ratio;
    } else {
      value = veloq;
    }
    bool holds = c.op == ">=" ? value >= c.bound : c.op == "<=" ? value <= c.bound : value < c.bound;
    if (!holds) return false;
  }
  return true;
}

std::optional<double> Result::ratio() const noexcept {
  if (!baseline || !std::isfinite(*baseline) || !std::isfinite(veloq) || *baseline <= 0 || veloq <= 0)
    return std::nullopt;
  return higher_is_better ? veloq / *baseline : *baseline / veloq;
}

std::string human_number(double value) {
  if (!std::isfinite(value)) return "-";
  auto [scaled, suffix] = scale_si(value);
  char buf[48];
  if (std::fabs(scaled) >= 100 || scaled == 0)
    std::snprintf(buf, sizeof buf, "%.0f%s", scaled, suffix);
  else if (std::fabs(scaled) >= 10)
    std::snprintf(buf, sizeof buf, "%.1f%s", scaled, suffix);
  else if (std::fabs(scaled) >= 0.01)
    std::snprintf(buf, sizeof buf, "%.2f%s", scaled, suffix);
  else
    std::snprintf(buf, sizeof buf, "%.2g%s", scaled, suffix);
  return buf;
}

void Report::print_table() const {
  std::printf("%s\n", bench_.c_str());
  std::printf("%-28s %-22s %9s %9s  %-30s %7s  %-4s %s\n", "case", "metric", "veloq", "baseline", "baseline is",
              "ratio", "met", "goal");
  for (const Result& r : results_) {
    std::optional<double> ratio = r.ratio();
    std::string ratio_text = ratio ? human_number(*ratio) : "-";
    std::string met = r.goal.empty() ? "" : (r.goal.judge(r.veloq, ratio) ? "yes" : "NO");
    std::printf("%-28s %-22s %9s %9s  %-30s %7s  %-4s %s\n", r.name.c_str(), r.metric.c_str(),
                human_number(r.veloq).c_str(), r.baseline ? human_number(*r.baseline).c_str() : "-",
                r.baseline_name.empty() ? "-" : r.baseline_name.c_str(), ratio_text.c_str(), met.c_str(),
                r.goal.text().c_str());
  }
  std::printf("(medians; ratio > 1 means Veloq wins)\n");
  std::fflush(stdout);
}

void Report::write_json(const std::string& path) const {
  std::string out = "{\"bench\": " + json_string(bench_) + ", \"results\": [";
  for (std::size_t i = 0; i < results_.size(); ++i) {
    const Result& r = results_[i];
    std::optional<double> ratio = r.ratio();
    out += i == 0 ? "\n  {" : ",\n  {";
    out += "\"case\": " + json_string(r.name);
    out += ", \"metric\": " + json_string(r.metric);
    out += ", \"veloq\": " + json_number(r.veloq);
    out += ", \"baseline_name\": " + (r.baseline_name.empty() ? std::string("null") : json_string(r.baseline_name));
    out += ", \"baseline\": " + (r.baseline ? json_number(*r.baseline) : std::string("null"));
    out += ", \"ratio\": " + (ratio ? json_number(*ratio) : std::string("null"));
    out += std::string(", \"higher_is_better\": ") + (r.higher_is_better ? "true" : "false");
    out += ", \"goal\": " + (r.goal.empty() ? std::string("null") : json_string(r.goal.text()));
    if (!r.goal.empty()) out += std::string(", \"met\": ") + (r.goal.judge(r.veloq, ratio) ? "true" : "false");
    out += ", \"runs\": " + std::to_string(r.runs);
    out += ", \"extra\": {";
    for (std::size_t k = 0; k < r.extra.size(); ++k) {
      if (k != 0) out += ", ";
      out += json_string(r.extra[k].first) + ": ";
      if (const double* d = std::get_if<double>(&r.extra[k].second))
        out += json_number(*d);
      else
        out += json_string(std::get<std::string>(r.extra[k].second));
    }
    out += "}}";
  }
  out += "\n]}\n";
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << out;
  file.close();
  if (!file) throw std::runtime_error("cannot write " + path);
}

int Report::finish(const Options& options) const {
  print_table();
  if (options.json_path().empty()) return 0;
  try {
    write_json(options.json_path());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", options.program().c_str(), e.what());
    return 1;
  }
  return 0;
}

}  // namespace veloq::bench
