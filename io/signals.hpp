// Graceful stop on SIGINT / SIGTERM, through the ring.
//
// Signals are turned into ordinary completions: SIGINT and SIGTERM are
// blocked in every thread, and a signalfd reports them. Blocking must happen
// before any other thread starts, because threads inherit the signal mask of
// the thread that creates them; a thread that leaves the signals unblocked
// would have them delivered to it (and the default action kills the process).
//
//   int main() {
//     veloq::io::block_stop_signals();                 // first thing in main
//     veloq::Runtime runtime({.shards = 4});
//     runtime.run([]() -> veloq::Task<void> {
//       start_serving();                               // spawn the real work
//       co_await veloq::io::wait_for_stop_signal();    // returns on SIGINT/SIGTERM
//     });                                              // returning stops every shard
//   }
//
// The signalfd is watched with IORING_OP_POLL_ADD and then read on the
// shard's own thread, rather than read with IORING_OP_READ: a read that the
// kernel hands to an io-wq worker would look at the worker's signals, not the
// process's.
#pragma once

#include <veloq/runtime/task.hpp>

#include <initializer_list>

namespace veloq::io {

// Blocks SIGINT and SIGTERM in the calling thread (and the threads it starts later).
void block_stop_signals();
// The same for any set of signals (SIGUSR2 for task dumps, say).
void block_signals(std::initializer_list<int> signals);

// Completes when SIGINT or SIGTERM is delivered to the process and returns
// its number. The signals must have been blocked (block_stop_signals).
Task<int> wait_for_stop_signal();

// The same for any set of signals, which the caller must have blocked.
Task<int> wait_for_signal(std::initializer_list<int> signals);

}  // namespace veloq::io
