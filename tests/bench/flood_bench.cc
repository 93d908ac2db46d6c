// Benchmark: connects per second of the io_uring flood engine against a baseline of one thread
// per in-flight connect doing blocking connect(), both on loopback against the same listener, in
// the same process. Prints the ratio; asserts only that both made every connection.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "agent/flood/flood_engine.h"
#include "agent/listener/listener.h"

namespace synq::agent {
namespace {

constexpr uint64_t kConnections = 3000;
constexpr uint32_t kConcurrency = 32;

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// kConcurrency threads, each: socket, blocking connect, keep open (like the flood holds them).
uint64_t BlockingBaseline(const common::SocketAddress& target) {
  std::atomic<uint64_t> next{0};
  std::atomic<uint64_t> connected{0};
  std::vector<std::vector<common::UniqueFd>> held(kConcurrency);
  std::vector<std::thread> threads;
  for (uint32_t t = 0; t < kConcurrency; ++t) {
    threads.emplace_back([&, t] {
      while (next.fetch_add(1) < kConnections) {
        common::UniqueFd fd(socket(target.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (connect(fd.get(), target.get(), target.length) == 0) {
          connected.fetch_add(1);
          held[t].push_back(std::move(fd));
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  return connected.load();
}

// A fresh listener that holds what it accepts (a closing server would make flood sockets see EOF).
std::unique_ptr<Listener> StartListener() {
  ListenerSpec spec;
  spec.name = "bench";
  spec.address = "127.0.0.1";
  spec.backlog = 4096;
  spec.accept = AcceptMode::kImmediate;
  auto listener = Listener::Start(spec);
  EXPECT_TRUE(listener.ok()) << listener.status();
  return listener.ok() ? *std::move(listener) : nullptr;
}

TEST(FloodBench, IoUringFloodAgainstThreadPerConnectBaseline) {
  constexpr int kRounds = 3;  // interleaved; the best of each side is compared
  double best_baseline = 0;
  double best_flood = 0;
  for (int round = 0; round < kRounds; ++round) {
    {
      auto listener = StartListener();
      ASSERT_NE(listener, nullptr);
      const auto t0 = std::chrono::steady_clock::now();
      ASSERT_EQ(BlockingBaseline(listener->bound()), kConnections);
      best_baseline =
          std::max(best_baseline, kConnections / Seconds(std::chrono::steady_clock::now() - t0));
    }
    {
      auto listener = StartListener();
      ASSERT_NE(listener, nullptr);
      FloodSpec flood;
      flood.name = "bench";
      flood.target = listener->bound();
      flood.connections = kConnections;
      flood.concurrency = kConcurrency;
      flood.connect_timeout = std::chrono::seconds(5);
      flood.hold = std::chrono::nanoseconds(0);
      std::atomic<bool> stop{false};
      const auto t0 = std::chrono::steady_clock::now();
      auto result = RunFlood(flood, std::chrono::system_clock::now(), stop);
      const double seconds = Seconds(std::chrono::steady_clock::now() - t0);
      ASSERT_TRUE(result.ok()) << result.status();
      ASSERT_EQ(result->established, kConnections);
      best_flood = std::max(best_flood, kConnections / seconds);
    }
  }
  std::printf("flood bench: %lu connects, %u in flight, best of %d rounds\n",
              static_cast<unsigned long>(kConnections), kConcurrency, kRounds);
  std::printf("  baseline (%u threads, blocking connect): %10.0f connects/s\n", kConcurrency,
              best_baseline);
  std::printf("  io_uring flood (1 thread):               %10.0f connects/s\n", best_flood);
  std::printf("  ratio flood/baseline: %.2f\n", best_flood / best_baseline);
}

}  // namespace
}  // namespace synq::agent
