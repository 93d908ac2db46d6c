// Proves the flood runner past one process's descriptor limit, with real worker processes (the
// built synq-agent in --flood-worker mode) and real sockets: a 30,000-connection keep flood
// from two source addresses is planned over more than one worker because 30,000 sockets exceed
// RLIMIT_NOFILE, every connection is established and sits in the server's accept queue, the
// workers hold them until the result is dropped and then exit; a worker killed mid-run is named
// in worker_errors and its share is counted nowhere. The server is a never-accepting listener
// (backlog 65535, somaxconn 65535 set inside the namespace only) in a network namespace this
// test creates, reached over a veth pair addressed from 198.18.0.0/15 (198.19.X.0/24).
//
// DISABLED_MeasureHeldConnections (--gtest_also_run_disabled_tests, SYNQ_SCALE_HELD=N, e.g.
// 100000) is a measurement, not run in CI: N connections held at once towards two
// such listeners from four source addresses, printing the time, the workers and kernel memory
// per held connection (Slab growth from /proc/meminfo, both ends of each connection).
#include "agent/flood/flood_runner.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/flood/flood_worker.h"
#include "agent/kernel/sock_diag.h"
#include "common/command.h"
#include "common/unique_fd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/agent/loopback_listener.h"

namespace synq::agent {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

const std::string kWorkerBinary = std::string(SYNQ_BINARY_DIR) + "/agent/synq-agent";

common::CommandResult Exec(const std::vector<std::string>& argv, int netns_fd = -1) {
  auto r = common::RunCommand(argv, netns_fd);
  return r.ok() ? *r : common::CommandResult{};
}

// Pids of this process's children started as flood workers.
std::set<pid_t> WorkerPids() {
  std::set<pid_t> out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    pid_t pid = 0;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &pid)) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    std::getline(stat, line);
    const size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    std::string state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid != getpid() || state == "Z") continue;
    std::ifstream cmdline(entry.path() / "cmdline");
    std::string args((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
    if (args.find("--flood-worker") != std::string::npos) out.insert(pid);
  }
  return out;
}

uint64_t SlabBytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key, unit;
  uint64_t kib = 0;
  while (meminfo >> key >> kib) {
    std::getline(meminfo, unit);
    if (key == "Slab:") return kib * 1024;
  }
  return 0;
}

class FloodRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for a network namespace";
    if (common::FindProgram("ip").empty()) GTEST_SKIP() << "needs iproute2's ip";
    ASSERT_TRUE(std::filesystem::exists(kWorkerBinary))
        << kWorkerBinary << " is not built: build the synq-agent target first";
    // 198.18.0.0/15 never leaves the root namespace (added once, left in place).
    if (Exec({"ip", "route", "show", "198.18.0.0/15"}).output.empty()) {
      Exec({"ip", "route", "add", "blackhole", "198.18.0.0/15"});
    }
    const std::string id = std::to_string(getpid());
    ns_ = "synq-scl" + id;
    veth_ = "sqs" + id + "a";
    net_ = absl::StrCat("198.19.", getpid() % 250 + 1, ".");
    Exec({"ip", "netns", "del", ns_});
    ASSERT_EQ(Exec({"ip", "netns", "add", ns_}).exit_code, 0);
    created_ = true;
    for (const auto& argv : std::vector<std::vector<std::string>>{
             {"ip", "link", "add", veth_, "type", "veth", "peer", "name", "sqs" + id + "b", "netns",
              ns_},
             {"ip", "addr", "add", net_ + "1/24", "dev", veth_},
             {"ip", "addr", "add", net_ + "2/24", "dev", veth_},
             {"ip", "addr", "add", net_ + "3/24", "dev", veth_},
             {"ip", "addr", "add", net_ + "4/24", "dev", veth_},
             {"ip", "link", "set", veth_, "up"},
             {"ip", "-n", ns_, "addr", "add", net_ + "254/24", "dev", "sqs" + id + "b"},
             {"ip", "-n", ns_, "link", "set", "sqs" + id + "b", "up"},
             {"ip", "-n", ns_, "link", "set", "lo", "up"},
             {"ip", "netns", "exec", ns_, "sysctl", "-qw", "net.core.somaxconn=65535"}}) {
      auto r = Exec(argv);
      ASSERT_EQ(r.exit_code, 0) << common::JoinArgv(argv) << ": " << r.output;
    }
    ns_fd_.Reset(::open(("/var/run/netns/" + ns_).c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(ns_fd_.valid());
  }

  void TearDown() override {
    const auto t0 = std::chrono::steady_clock::now();
    listeners_.clear();
    if (created_) {
      Exec({"ip", "link", "del", veth_});
      Exec({"ip", "netns", "del", ns_});
    }
    std::printf("teardown %.1f s\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }

  // A never-accepting listener inside the namespace; returns its port.
  uint16_t Listen() {
    common::UniqueFd fd;
    std::thread([&] {
      if (setns(ns_fd_.get(), CLONE_NEWNET) != 0) return;
      fd.Reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    }).join();
    EXPECT_TRUE(fd.valid());
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    ::inet_pton(AF_INET, (net_ + "254").c_str(), &addr.sin_addr);
    EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(fd.get(), 65535), 0);
    socklen_t len = sizeof(addr);
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    listeners_.push_back(std::move(fd));
    return ntohs(addr.sin_port);
  }

  // The listener's accept queue, read by sock_diag inside the namespace.
  int64_t AcceptQueue(uint16_t port) {
    int64_t out = -1;
    std::thread([&] {
      if (setns(ns_fd_.get(), CLONE_NEWNET) != 0) return;
      auto q = QueryListenQueue(port);
      if (q.ok()) out = q->accept_queue;
    }).join();
    return out;
  }

  FloodSpec Spec(const std::string& name, uint16_t port, uint64_t connections,
                 std::vector<std::string> sources) {
    FloodSpec s;
    s.name = name;
    s.target = *common::ParseSocketAddress(absl::StrCat(net_, "254:", port));
    s.connections = connections;
    s.concurrency = 2000;
    s.connect_timeout = 5s;
    s.hold = 200ms;
    s.threads = 1;
    s.sources = std::move(sources);
    return s;
  }

  std::string ns_, veth_, net_;
  bool created_ = false;
  common::UniqueFd ns_fd_;
  std::vector<common::UniqueFd> listeners_;
};

TEST(FloodRunner, SplitsAFloodOverRingsInThisProcessAndMergesExactly) {
  // A never-accepting loopback listener: 3000 connections fit its queue (backlog 4096 is
  // capped by somaxconn, 4096 by default), so every attempt is established.
  common::UniqueFd listener = Listen(4096);
  ASSERT_TRUE(listener.valid());
  FloodSpec spec;
  spec.name = "rings";
  spec.target = AddressOf(listener);
  spec.connections = 3000;
  spec.concurrency = 500;
  spec.hold = 100ms;
  spec.threads = 2;
  auto budget = ReadHostBudget("/proc/sys");
  ASSERT_TRUE(budget.ok()) << budget.status();
  auto plans = PlanFloods({spec}, *budget);
  ASSERT_TRUE(plans.ok()) << plans.status();
  ASSERT_EQ(plans->front().workers, 0u);  // 3000 sockets fit this process
  ASSERT_EQ(plans->front().threads, 2u);
  std::atomic<bool> stop{false};
  auto result = RunPlannedFlood(plans->front(), std::chrono::system_clock::now(), stop);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->threads, 2u);
  EXPECT_EQ(result->workers, 1u);
  EXPECT_EQ(result->attempted, 3000u);
  EXPECT_EQ(result->established, 3000u);
  EXPECT_EQ(result->connect_latency_us.count(), 3000u);
  EXPECT_EQ(result->held_sockets->size(), 3000u);  // both rings' sockets, held here
  auto queue = QueryListenQueue(spec.target.port());
  ASSERT_TRUE(queue.ok()) << queue.status();
  EXPECT_EQ(queue->accept_queue, 3000);
}

TEST(FloodRunner, WorkerProcessesRunTheEngineTheAgentChose) {
  // Two worker processes, each told the engine in its request: a never-accepting loopback
  // listener (backlog 4096, capped by somaxconn 4096 by default) takes all 200 connections.
  common::UniqueFd listener = Listen(4096);
  ASSERT_TRUE(listener.valid());
  FloodSpec spec;
  spec.name = "engine";
  spec.target = AddressOf(listener);
  spec.connections = 200;
  spec.concurrency = 50;
  spec.hold = 0ms;
  spec.threads = 1;
  spec.engine = FloodEngine::kEpoll;
  ASSERT_TRUE(std::filesystem::exists(kWorkerBinary)) << kWorkerBinary << " is not built";
  auto budget = ReadHostBudget("/proc/sys");
  ASSERT_TRUE(budget.ok()) << budget.status();
  auto plans = PlanFloods({spec}, *budget);
  ASSERT_TRUE(plans.ok()) << plans.status();
  std::atomic<bool> stop{false};
  auto result = RunFloodWorkers(plans->front().spec, 2, 1, 200,
                                std::chrono::system_clock::now() + 100ms, stop, kWorkerBinary);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(result->worker_errors, ::testing::IsEmpty());
  EXPECT_EQ(result->workers, 2u);
  EXPECT_EQ(result->established, 200u);
  EXPECT_EQ(result->engine, "epoll");
}

TEST(FloodRunner, IPv6LoopbackFloodUsesTheV6SourceOverRings) {
  common::UniqueFd listener(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_addr = in6addr_loopback;
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    GTEST_SKIP() << "no IPv6 loopback: " << std::strerror(errno);
  }
  ASSERT_EQ(::listen(listener.get(), 4096), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  FloodSpec spec;
  spec.name = "v6";
  spec.target = *common::ParseSocketAddress(absl::StrCat("[::1]:", ntohs(addr.sin6_port)));
  spec.connections = 1000;
  spec.concurrency = 100;
  spec.hold = 100ms;
  spec.threads = 2;
  auto budget = ReadHostBudget("/proc/sys");
  ASSERT_TRUE(budget.ok()) << budget.status();
  auto plans = PlanFloods({spec}, *budget);
  ASSERT_TRUE(plans.ok()) << plans.status();
  EXPECT_THAT(plans->front().spec.sources, ::testing::ElementsAre("::1"));
  std::atomic<bool> stop{false};
  auto result = RunPlannedFlood(plans->front(), std::chrono::system_clock::now(), stop);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->threads, 2u);
  EXPECT_EQ(result->established, 1000u);
  for (const auto& h : result->held) EXPECT_EQ(h.local_ip, "::1");
}

TEST_F(FloodRunnerTest, StopReachesTheWorkersAndTheyReportWhatTheyDid) {
  const uint16_t port = Listen();
  auto budget = ReadHostBudget("/proc/sys");
  ASSERT_TRUE(budget.ok()) << budget.status();
  FloodSpec spec = Spec("stopped", port, 30000, {net_ + "1", net_ + "2"});
  spec.rate = 5000;  // 6 s of launches; stopped after about 1 s
  spec.profile.rate = 5000;
  auto plans = PlanFloods({spec}, *budget);
  ASSERT_TRUE(plans.ok()) << plans.status();
  if (plans->front().workers < 2) GTEST_SKIP() << "the fd limit fits the flood in one process";
  std::atomic<bool> stop{false};
  std::thread stopper([&] {
    std::this_thread::sleep_for(1100ms);
    stop = true;
  });
  const auto t0 = std::chrono::steady_clock::now();
  auto result = RunPlannedFlood(plans->front(), std::chrono::system_clock::now() + 100ms, stop,
                                {kWorkerBinary});
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  stopper.join();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(result->worker_errors, ::testing::IsEmpty());
  // About 1 s of a 5000/s schedule was launched: far fewer than 30000, more than none.
  EXPECT_GT(result->attempted, 0u);
  EXPECT_LT(result->attempted, 20000u);
  EXPECT_LT(took, 4.0);  // not the 6 s the whole schedule takes
}

TEST_F(FloodRunnerTest, HoldsMoreConnectionsThanOneProcessMayOpenAcrossWorkers) {
  const uint16_t port = Listen();
  auto budget = ReadHostBudget("/proc/sys");
  ASSERT_TRUE(budget.ok()) << budget.status();
  // Each worker may hold its hard RLIMIT_NOFILE less the margin: 30,000 sockets need more than
  // one process whenever that is below 30,000 (20,000 on our machines: 2 workers).
  const uint64_t per_worker = budget->fd_hard_limit - kFdMargin;
  if (per_worker >= 30000) GTEST_SKIP() << "RLIMIT_NOFILE hard limit is " << budget->fd_hard_limit;
  auto plans = PlanFloods({Spec("held", port, 30000, {net_ + "1", net_ + "2"})}, *budget);
  ASSERT_TRUE(plans.ok()) << plans.status();
  const FloodPlan& plan = plans->front();
  EXPECT_EQ(plan.workers, (30000 + per_worker - 1) / per_worker);
  EXPECT_GT(plan.workers, 1u);

  std::atomic<bool> stop{false};
  const auto t0 = std::chrono::steady_clock::now();
  auto result =
      RunPlannedFlood(plan, std::chrono::system_clock::now() + 100ms, stop, {kWorkerBinary});
  const auto t1 = std::chrono::steady_clock::now();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(result->worker_errors, ::testing::IsEmpty());
  EXPECT_EQ(result->workers, plan.workers);
  EXPECT_EQ(result->attempted, 30000u);
  EXPECT_EQ(result->established, 30000u);
  EXPECT_EQ(result->connect_latency_us.count(), 30000u);
  // Nobody accepts: every established connection waits in the accept queue (65535 + 1 room).
  EXPECT_EQ(AcceptQueue(port), 30000);
  const std::set<pid_t> workers = WorkerPids();
  EXPECT_EQ(workers.size(), plan.workers);  // holding until the result goes

  const auto t2 = std::chrono::steady_clock::now();
  result = absl::UnknownError("dropped");  // closes the workers' stdin: they close and exit
  EXPECT_TRUE(WorkerPids().empty());
  const auto t3 = std::chrono::steady_clock::now();
  std::printf("flood %.1f s, checks %.1f s, workers gone %.1f s after the result was dropped\n",
              std::chrono::duration<double>(t1 - t0).count(),
              std::chrono::duration<double>(t2 - t1).count(),
              std::chrono::duration<double>(t3 - t2).count());
}

TEST_F(FloodRunnerTest, WorkerKilledMidRunIsReportedAndItsShareCountedNowhere) {
  const uint16_t port = Listen();
  auto budget = ReadHostBudget("/proc/sys");
  ASSERT_TRUE(budget.ok()) << budget.status();
  FloodSpec spec = Spec("killed", port, 30000, {net_ + "1", net_ + "2"});
  spec.rate = 10000;  // 3 s of launches: time to kill a worker in the middle
  spec.profile.rate = 10000;
  auto plans = PlanFloods({spec}, *budget);
  ASSERT_TRUE(plans.ok()) << plans.status();
  const FloodPlan& plan = plans->front();
  if (plan.workers < 2) GTEST_SKIP() << "the fd limit fits the flood in one process";

  std::atomic<bool> stop{false};
  absl::StatusOr<FloodResult> result = absl::UnknownError("not run");
  std::thread run([&] {
    result = RunPlannedFlood(plan, std::chrono::system_clock::now() + 100ms, stop, {kWorkerBinary});
  });
  std::set<pid_t> pids;
  for (int i = 0; i < 200 && pids.size() < plan.workers; ++i) {
    std::this_thread::sleep_for(10ms);
    pids = WorkerPids();
  }
  std::this_thread::sleep_for(1500ms);
  ASSERT_FALSE(pids.empty());
  ASSERT_EQ(::kill(*pids.begin(), SIGKILL), 0);
  run.join();
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->worker_errors.size(), 1u);
  EXPECT_THAT(result->worker_errors[0], HasSubstr("killed by signal 9"));
  EXPECT_THAT(result->worker_errors[0], HasSubstr("after reporting nothing"));
  EXPECT_THAT(result->worker_errors[0], HasSubstr("is not observed"));
  EXPECT_EQ(result->workers, plan.workers);
  // Only the survivors' shares are counted: 30000 less the killed worker's 30000 / workers.
  const uint64_t survivors = 30000 - 30000 / plan.workers;
  EXPECT_EQ(result->attempted, survivors);
  EXPECT_EQ(result->established, survivors);
}

TEST_F(FloodRunnerTest, DISABLED_MeasureHeldConnections) {
  const char* env = std::getenv("SYNQ_SCALE_HELD");
  uint64_t total = 0;
  if (env == nullptr || !absl::SimpleAtoi(env, &total) || total == 0) {
    GTEST_SKIP() << "set SYNQ_SCALE_HELD=100000 to say how many to hold";
  }
  // One accept queue holds at most 65536: a listener per 50,000, the flood split evenly.
  const uint64_t n = (total + 49999) / 50000;
  const std::vector<std::string> sources = {net_ + "1", net_ + "2", net_ + "3", net_ + "4"};
  std::vector<uint16_t> ports;
  std::vector<FloodSpec> specs;
  for (uint64_t i = 0; i < n; ++i) {
    ports.push_back(Listen());
    specs.push_back(
        Spec(absl::StrCat("held-", i), ports.back(), total / n + (i < total % n), sources));
  }
  auto budget = ReadHostBudget("/proc/sys");
  ASSERT_TRUE(budget.ok()) << budget.status();
  auto plans = PlanFloods(specs, *budget);
  ASSERT_TRUE(plans.ok()) << plans.status();
  const uint64_t slab_before = SlabBytes();
  const auto t0 = std::chrono::steady_clock::now();
  std::atomic<bool> stop{false};
  std::vector<absl::StatusOr<FloodResult>> results(n, absl::UnknownError("not run"));
  std::vector<std::thread> runs;
  for (size_t i = 0; i < n; ++i) {
    runs.emplace_back([&, i] {
      results[i] = RunPlannedFlood((*plans)[i], std::chrono::system_clock::now() + 100ms, stop,
                                   {kWorkerBinary});
    });
  }
  for (auto& t : runs) t.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const uint64_t slab_after = SlabBytes();
  uint64_t established = 0, workers = 0;
  for (auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.status();
    established += r->established;
    workers += r->workers;
    for (const auto& e : r->worker_errors) ADD_FAILURE() << e;
  }
  int64_t queued = 0;
  for (uint16_t port : ports) queued += AcceptQueue(port);
  std::printf(
      "held %lu of %lu (accept queues %ld) in %.1f s (incl. %.1f s hold) over %lu workers; slab "
      "grew %lu bytes = %.0f bytes per connection (both ends), budget's figure %lu per socket "
      "(%s)\n",
      established, total, queued, seconds, 0.2, workers, slab_after - slab_before,
      static_cast<double>(slab_after - slab_before) / static_cast<double>(established),
      budget->socket_bytes_v4, budget->socket_bytes_source.c_str());
  EXPECT_EQ(established, total);
}

}  // namespace
}  // namespace synq::agent
