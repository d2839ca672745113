#include <veloq/runtime/log.hpp>
#include <veloq/runtime/runtime_context.hpp>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <cstdlib>
#include <memory>
#include <string>

namespace veloq {

namespace {

class ShardIdFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg&, const std::tm&, spdlog::memory_buf_t& dest) override {
    RuntimeContext* ctx = RuntimeContext::current_or_null();
    std::string id = ctx ? std::to_string(ctx->shard_id()) : std::string("-");
    dest.append(id.data(), id.data() + id.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<ShardIdFlag>(); }
};

std::shared_ptr<spdlog::logger> make_logger() {
  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>("veloq", sink);
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<ShardIdFlag>('*').set_pattern("[%H:%M:%S.%f] [%^%l%$] [shard %*] %v");
  logger->set_formatter(std::move(formatter));
  logger->set_level(spdlog::level::warn);
  if (const char* env = std::getenv("VELOQ_LOG")) logger->set_level(spdlog::level::from_str(env));
  return logger;
}

}  // namespace

spdlog::logger& log() {
  static const std::shared_ptr<spdlog::logger> logger = make_logger();
  return *logger;
}

void configure_logging(std::string_view level) {
  if (!level.empty()) log().set_level(spdlog::level::from_str(std::string(level)));
  if (const char* env = std::getenv("VELOQ_LOG")) log().set_level(spdlog::level::from_str(env));
}

}  // namespace veloq
