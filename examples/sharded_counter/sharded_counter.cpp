// A sharded service in a few lines: every shard owns one WordCounter and
// counts the words routed to it by hash; nothing is shared, nothing is locked.
// Shard 0 routes words with submit_to, then gathers the totals with
// map_reduce. This is the example from the README.
#include <veloq/mesh/sharded.hpp>
#include <veloq/mesh/submit_to.hpp>
#include <veloq/runtime/runtime.hpp>

#include <cstdio>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

struct WordCounter {
  std::unordered_map<std::string, int> counts;
  int add(std::string word) { return ++counts[word]; }
  veloq::Task<void> stop() { co_return; }  // runs on the instance's own shard
};

int main() {
  veloq::Runtime runtime;  // one shard per CPU, each pinned
  int distinct = runtime.run([]() -> veloq::Task<int> {
    veloq::Sharded<WordCounter> counters;
    co_await counters.start();
    std::vector<std::string> words = {"io", "uring", "shard", "io", "mesh", "shard", "io"};
    for (const std::string& w : words) {
      unsigned owner = std::hash<std::string>{}(w) % veloq::shard_count();
      co_await counters.invoke_on(owner, &WordCounter::add, w);
    }
    int total = co_await veloq::map_reduce([&] { return static_cast<int>(counters.local().counts.size()); }, 0,
                                           std::plus<int>());
    co_await counters.stop();
    co_return total;
  });
  std::printf("distinct words: %d\n", distinct);
  return distinct == 4 ? 0 : 1;
}
