// LogCapture: collects what the runtime logs at warning level and above while
// it lives, so a test can check that a warning was (or was not) given.
#pragma once

#include <veloq/runtime/log.hpp>

#include <spdlog/sinks/ostream_sink.h>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <sstream>
#include <string>

namespace test_support {

class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(out_)), level_(veloq::log().level()) {
    veloq::log().sinks().push_back(sink_);
    veloq::log().set_level(spdlog::level::warn);
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  ~LogCapture() {
    auto& sinks = veloq::log().sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
    veloq::log().set_level(level_);
  }
  // How many times `needle` occurs in what was logged.
  std::size_t count(const std::string& needle) const {
    std::string text = out_.str();
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
    return n;
  }
  std::string text() const { return out_.str(); }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
  spdlog::level::level_enum level_;
};

}  // namespace test_support
