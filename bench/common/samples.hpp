// Samples: the figures of repeated runs and the order statistics taken from
// them. Every value a benchmark reports is a median over runs; latency rows
// also report percentiles over the individual measurements.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace veloq::bench {

// The p-th percentile (0..100) by the nearest-rank method; NaN when empty.
inline double percentile(std::vector<double> values, double p) {
  if (values.empty()) return std::nan("");
  std::size_t rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(values.size())));
  std::size_t index = rank == 0 ? 0 : std::min(rank - 1, values.size() - 1);
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(index), values.end());
  return values[index];
}

// The middle value (the mean of the two middle ones for an even count); NaN when empty.
inline double median(std::vector<double> values) {
  if (values.empty()) return std::nan("");
  std::sort(values.begin(), values.end());
  std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// The median of series[index], NaN when the series was not measured (--only).
inline double median_at(const std::vector<std::vector<double>>& series, std::size_t index) {
  return index < series.size() ? median(series[index]) : std::nan("");
}

inline double min_of(const std::vector<double>& values) {
  return values.empty() ? std::nan("") : *std::min_element(values.begin(), values.end());
}

inline double max_of(const std::vector<double>& values) {
  return values.empty() ? std::nan("") : *std::max_element(values.begin(), values.end());
}

}  // namespace veloq::bench
