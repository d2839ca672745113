// Logging: one spdlog logger for the whole runtime, with the shard id of the
// calling thread in every line ("shard 3", or "-" off-shard). Quiet by
// default (warnings and errors); the level comes from the configuration or
// from the VELOQ_LOG environment variable (trace, debug, info, warn, error, off),
// the environment winning so a deployed service can be turned up without a rebuild.
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

namespace veloq {

spdlog::logger& log();

// Sets the level: `level` if not empty, overridden by VELOQ_LOG when set.
void configure_logging(std::string_view level);

}  // namespace veloq
