// Benchmark (issue 7 item 9): synq's flood engine against a minimal io_uring connect loop written
// here, in the same process and the same setup, medians of N rounds, printed as figures and
// ratios. It is a benchmark, not a timed test: the only assertions are that both sides made every
// connection (a measurement of a half-failed flood would mean nothing).
//
// Setup
// - The client is this process. The minimal loop is liburing at its plainest: socket(), one
//   IORING_OP_CONNECT per socket, `concurrency` connects in flight, nothing else (no timeout, no
//   poll). Hold: keep each socket. Churn: close each with SO_LINGER 0 (RST) right after connect.
// - The server is a forked child (so its accepted descriptors do not count against this process's
//   RLIMIT_NOFILE of 20,000), accepting with io_uring multishot accept, so its accept queue is
//   never the limit. For hold runs it keeps every accepted socket, so the client's sockets stay
//   ESTABLISHED (and each 4-tuple stays taken); for churn runs it closes what it accepts. Every
//   measurement gets a fresh server on a fresh port (port 0), so no round inherits the 4-tuples,
//   TIME_WAITs or bind buckets of another. Sockets are closed with RST at the end of each run and
//   the next run waits until /proc/net/sockstat is back to where it started.
// - Loopback runs pin the client to CPU 0 and the server to CPU 1. The threads comparison runs
//   against a server in another network namespace (`synq-<pid>-bench`, a veth pair addressed
//   198.19.254.1/30 - 198.19.254.2/30, inside the root namespace's blackhole route for
//   198.18.0.0/15, somaxconn 65535 set inside the namespace), unpinned, so the two client threads
//   can use both cores. The namespace is deleted at the end, also on failure.
// - synq runs as the agent runs a flood: PlanFloods (sources on the route, its own source ports
//   from ip_local_port_range minus reserved ports, the budget check, rings) and RunPlannedFlood,
//   with the same concurrency. The 8,000 case also runs the engine alone with the kernel's ports.
// - EpollEngineAgainstIoUringEngine: synq's epoll engine against its io_uring engine (ratios
//   epoll/io_uring) in churn, hold, and hold towards one destination with the kernel's ports.
// - Regimes: connect-and-hold at 8,000 held; connect-and-hold at 15,000 held towards one
//   destination, where the kernel's ephemeral port search for the minimal loop scans longer and
//   longer once about half of ip_local_port_range is taken (synq binds its own ports from that
//   same range, so it never searches); churn with close rst; 1 vs 2 threads; and user memory per
//   held socket in the engine (mallinfo2 sampled every millisecond during the hold, peak minus
//   before, divided by the sockets held).
//
// Smoke (CTest, label bench): small counts, one round. Full:
//   build/tests/bench/bench_capacity --full
// Figures from full runs are recorded in docs/performance.md.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <liburing.h>
#include <malloc.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "agent/flood/flood_engine.h"
#include "agent/flood/flood_runner.h"
#include "common/command.h"
#include "common/net_address.h"
#include "common/unique_fd.h"

namespace synq::bench {
namespace {

using agent::FloodResult;
using agent::FloodSpec;
using common::SocketAddress;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

bool g_full = false;

// Counts per regime: the full run's are the targets; the smoke run's keep CI short.
struct Sizes {
  uint64_t hold;         // connect-and-hold, below the port-search regime
  uint64_t port_search;  // connect-and-hold towards one destination, past half the port range
  uint64_t churn;        // connect + close rst
  uint64_t threads;      // churn attempts for the 1 vs 2 threads comparison
  uint64_t memory;       // held sockets for the memory figure
  int rounds;
};
constexpr Sizes kSmoke{1000, 2000, 2000, 4000, 1000, 1};
constexpr Sizes kFull{8000, 15000, 40000, 60000, 15000, 3};
const Sizes& S() { return g_full ? kFull : kSmoke; }

constexpr uint32_t kConcurrency = 256;
// Every loop is bounded: past this a run stops and reports what it got.
constexpr auto kRunLimit = 60s;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 == 1 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

void PinTo(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (cpu < 0) {
    for (int i = 0; i < CPU_SETSIZE && i < static_cast<int>(std::thread::hardware_concurrency());
         ++i) {
      CPU_SET(i, &set);
    }
  } else {
    CPU_SET(cpu, &set);
  }
  sched_setaffinity(0, sizeof(set), &set);
}

// "TCP: inuse N orphan N tw N alloc N mem N" of this namespace.
struct SockStat {
  long inuse = 0, tw = 0, alloc = 0, mem_pages = 0;
};
SockStat ReadSockStat() {
  std::ifstream in("/proc/net/sockstat");
  std::string line;
  SockStat s;
  while (std::getline(in, line)) {
    if (line.rfind("TCP:", 0) != 0) continue;
    std::istringstream words(line.substr(4));
    std::string key;
    long value = 0;
    while (words >> key >> value) {
      if (key == "inuse") s.inuse = value;
      if (key == "tw") s.tw = value;
      if (key == "alloc") s.alloc = value;
      if (key == "mem") s.mem_pages = value;
    }
  }
  return s;
}

// Bytes in kernel slab caches (active objects x object size): what idle sockets cost the kernel
// (tcp sock, socket inode, file, dentry, ...). Kernel-wide, so other activity adds noise.
long SlabBytes() {
  std::ifstream in("/proc/slabinfo");
  std::string line;
  long total = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#' || line.rfind("slabinfo", 0) == 0) continue;
    std::istringstream words(line);
    std::string name;
    long active = 0, num = 0, size = 0;
    if (words >> name >> active >> num >> size) total += active * size;
  }
  return total;
}

// Waits (bounded) until the sockets of earlier runs are gone, so runs do not see each other.
void Settle(const SockStat& baseline) {
  const auto deadline = Clock::now() + 10s;
  while (Clock::now() < deadline) {
    const SockStat now = ReadSockStat();
    if (now.alloc <= baseline.alloc + 64 && now.tw <= baseline.tw + 64) return;
    std::this_thread::sleep_for(20ms);
  }
}

// Closes with RST: no FIN exchange, no TIME_WAIT left for the next run.
void CloseRst(int fd) {
  const linger no_linger{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &no_linger, sizeof(no_linger));
  ::close(fd);
}

// ---------------------------------------------------------------------------------------------
// The server: a forked child accepting with io_uring multishot accept.

enum class ServerMode { kHold, kClose };

// Runs in the child; never returns.
[[noreturn]] void ServeChild(int report_fd, int control_fd, const std::string& netns,
                             const std::string& ip, ServerMode mode, int cpu) {
  auto fail = [&](int err) {
    const int32_t msg[2] = {-1, err};
    (void)!::write(report_fd, msg, sizeof(msg));
    _exit(1);
  };
  if (cpu >= 0) PinTo(cpu);
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
  if (!netns.empty()) {
    const int ns = ::open(("/var/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0 || ::setns(ns, CLONE_NEWNET) != 0) fail(errno);
    ::close(ns);
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  ::inet_pton(AF_INET, ip.c_str(), &addr.sin_addr);
  const int listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd < 0) fail(errno);
  if (::bind(listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) fail(errno);
  // Capped by the namespace's somaxconn (4096 in the root namespace; 65535 in ours).
  if (::listen(listen_fd, 65535) != 0) fail(errno);
  socklen_t len = sizeof(addr);
  ::getsockname(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len);

  io_uring ring;
  io_uring_params params{};
  params.flags = IORING_SETUP_CQSIZE;
  params.cq_entries = 16384;
  if (int r = io_uring_queue_init_params(256, &ring, &params); r < 0) fail(-r);
  auto arm_accept = [&] {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    io_uring_prep_multishot_accept(sqe, listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, 1);
  };
  arm_accept();
  io_uring_sqe* poll = io_uring_get_sqe(&ring);
  io_uring_prep_poll_add(poll, control_fd, POLLIN | POLLHUP);
  io_uring_sqe_set_data64(poll, 2);
  io_uring_submit(&ring);

  const int32_t ready[2] = {ntohs(addr.sin_port), 0};
  (void)!::write(report_fd, ready, sizeof(ready));
  ::close(report_fd);
  while (true) {
    io_uring_cqe* cqe = nullptr;
    if (io_uring_submit_and_wait(&ring, 1) < 0 && errno != EINTR) _exit(2);
    unsigned head = 0;
    unsigned seen = 0;
    bool rearm = false;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ++seen;
      if (cqe->user_data == 2) _exit(0);  // the parent closed the control pipe
      if (cqe->res >= 0 && mode == ServerMode::kClose) ::close(cqe->res);
      // Hold mode keeps the descriptor: the kernel closes them all when the child exits.
      if ((cqe->flags & IORING_CQE_F_MORE) == 0) rearm = true;  // CQ overflow, EMFILE, ...
    }
    io_uring_cq_advance(&ring, seen);
    if (rearm) arm_accept();
  }
}

class ServerProcess {
 public:
  // Forks a server listening on `ip` port 0 (inside `netns` when not empty) and waits until it
  // listens; the address it bound is address().
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(const std::string& ip,
                                                              ServerMode mode, int cpu,
                                                              const std::string& netns = "") {
    int report[2];
    int control[2];
    if (::pipe2(report, O_CLOEXEC) != 0 || ::pipe2(control, O_CLOEXEC) != 0) {
      return absl::ErrnoToStatus(errno, "pipe2");
    }
    const pid_t pid = ::fork();
    if (pid < 0) return absl::ErrnoToStatus(errno, "fork");
    if (pid == 0) {
      ::close(report[0]);
      ::close(control[1]);
      ServeChild(report[1], control[0], netns, ip, mode, cpu);
    }
    ::close(report[1]);
    ::close(control[0]);
    auto server = std::unique_ptr<ServerProcess>(new ServerProcess(pid, control[1]));
    int32_t msg[2] = {0, 0};
    const ssize_t n = ::read(report[0], msg, sizeof(msg));
    ::close(report[0]);
    if (n != sizeof(msg) || msg[0] < 0) {
      return absl::ErrnoToStatus(msg[1], absl::StrCat("server in '", netns, "' on ", ip));
    }
    auto address = common::ParseHostAddress(ip, static_cast<uint16_t>(msg[0]));
    if (!address.ok()) return address.status();
    server->address_ = *address;
    return server;
  }

  ~ServerProcess() {
    ::close(control_);  // the child exits when it sees the pipe close
    for (int i = 0; i < 500; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(10ms);
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }

  const SocketAddress& address() const { return address_; }

 private:
  ServerProcess(pid_t pid, int control) : pid_(pid), control_(control) {}
  pid_t pid_;
  int control_;
  SocketAddress address_;
};

// ---------------------------------------------------------------------------------------------
// The minimal io_uring connect loop.

struct LoopResult {
  uint64_t established = 0;
  uint64_t failed = 0;
  double seconds = 0;
  std::vector<int> held;
};

// Connects `n` sockets to `target`, `concurrency` in flight; keeps them (hold) or closes each
// with RST right after its connect completes (churn). The kernel picks every source port.
LoopResult MinimalLoop(const SocketAddress& target, uint64_t n, uint32_t concurrency, bool churn) {
  LoopResult out;
  io_uring ring;
  io_uring_params params{};
  params.flags = IORING_SETUP_CQSIZE;
  params.cq_entries = 4 * concurrency;
  if (io_uring_queue_init_params(concurrency, &ring, &params) < 0) return out;
  out.held.reserve(churn ? 0 : n);
  const auto start = Clock::now();
  const auto deadline = start + kRunLimit;
  uint64_t launched = 0;
  uint64_t done = 0;
  uint64_t in_flight = 0;
  while (done < n && Clock::now() < deadline) {
    while (in_flight < concurrency && launched < n) {
      const int fd = ::socket(target.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        ++out.failed;
        ++done;
        ++launched;
        continue;
      }
      io_uring_sqe* sqe = io_uring_get_sqe(&ring);
      io_uring_prep_connect(sqe, fd, target.get(), target.length);
      io_uring_sqe_set_data64(sqe, static_cast<uint64_t>(fd));
      ++launched;
      ++in_flight;
    }
    __kernel_timespec ts{0, 50'000'000};
    io_uring_cqe* cqe = nullptr;
    io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, nullptr);
    unsigned head = 0;
    unsigned seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ++seen;
      const int fd = static_cast<int>(cqe->user_data);
      if (cqe->res == 0) {
        ++out.established;
        if (churn) {
          CloseRst(fd);
        } else {
          out.held.push_back(fd);
        }
      } else {
        ++out.failed;
        CloseRst(fd);
      }
      ++done;
      --in_flight;
    }
    io_uring_cq_advance(&ring, seen);
  }
  out.seconds = Seconds(Clock::now() - start);
  io_uring_queue_exit(&ring);  // cancels what is left (only past the limit)
  return out;
}

// `threads` minimal loops splitting `n`, timed together.
LoopResult MinimalLoopThreads(const SocketAddress& target, uint64_t n, uint32_t concurrency,
                              bool churn, int threads) {
  std::vector<LoopResult> parts(threads);
  std::vector<std::thread> workers;
  const auto start = Clock::now();
  for (int t = 0; t < threads; ++t) {
    const uint64_t share = n / threads + (static_cast<uint64_t>(t) < n % threads ? 1 : 0);
    workers.emplace_back(
        [&, t, share] { parts[t] = MinimalLoop(target, share, concurrency / threads, churn); });
  }
  for (auto& w : workers) w.join();
  LoopResult out;
  out.seconds = Seconds(Clock::now() - start);
  for (auto& p : parts) {
    out.established += p.established;
    out.failed += p.failed;
    out.held.insert(out.held.end(), p.held.begin(), p.held.end());
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// synq's flood engine.

struct SynqRun {
  absl::Status status;
  uint64_t established = 0;
  uint64_t attempted = 0;
  uint64_t closed = 0;
  uint32_t threads = 1;
  uint32_t workers = 0;
  double seconds = 0;
};

FloodSpec BaseSpec(const SocketAddress& target, uint64_t n) {
  FloodSpec spec;
  spec.name = "bench";
  spec.target = target;
  spec.connections = n;
  spec.concurrency = kConcurrency;
  spec.connect_timeout = 10s;
  spec.hold = 0ns;
  spec.threads = 1;
  return spec;
}

void ReleaseHeld(FloodResult& result) {
  if (result.held_sockets) {
    for (common::UniqueFd& fd : *result.held_sockets) CloseRst(fd.Release());
    result.held_sockets->clear();
  }
  result.keepalive.reset();
}

absl::StatusOr<agent::FloodPlan> Plan(const FloodSpec& spec) {
  absl::StatusOr<agent::HostBudget> budget = agent::ReadHostBudget("/proc/sys");
  if (!budget.ok()) return budget.status();
  absl::StatusOr<std::vector<agent::FloodPlan>> plans = agent::PlanFloods({spec}, *budget);
  if (!plans.ok()) return plans.status();
  return plans->front();
}

// As the agent runs a flood: PlanFloods (sources on the route to the target, this namespace's
// ip_local_port_range minus reserved ports, the budget check, rings) and RunPlannedFlood. With
// `kernel_ports` the engine alone instead (RunFlood, one ring), leaving each port to the kernel.
SynqRun RunSynq(const FloodSpec& spec, bool kernel_ports = false) {
  SynqRun run;
  std::atomic<bool> stop{false};
  absl::StatusOr<FloodResult> result;
  double seconds = 0;
  if (kernel_ports) {
    const auto start = Clock::now();
    result = agent::RunFlood(spec, std::chrono::system_clock::now(), stop);
    seconds = Seconds(Clock::now() - start);
  } else {
    absl::StatusOr<agent::FloodPlan> plan = Plan(spec);
    if (!plan.ok()) {
      run.status = plan.status();
      return run;
    }
    run.threads = plan->threads;
    run.workers = plan->workers;
    const auto start = Clock::now();
    result = agent::RunPlannedFlood(*plan, std::chrono::system_clock::now(), stop);
    seconds = Seconds(Clock::now() - start);
  }
  run.seconds = seconds;
  if (!result.ok()) {
    run.status = result.status();
    return run;
  }
  run.established = result->established;
  run.attempted = result->attempted;
  run.closed = result->closed;
  ReleaseHeld(*result);
  return run;
}

// ---------------------------------------------------------------------------------------------
// The namespace for the threads comparison.

class BenchNamespace {
 public:
  static constexpr char kRootIp[] = "198.19.254.1";
  static constexpr char kNsIp[] = "198.19.254.2";

  static absl::StatusOr<std::unique_ptr<BenchNamespace>> Create() {
    RemoveStale();
    // Nothing addressed from 198.18.0.0/15 may leave the machine: a blackhole behind our /30.
    auto routes = common::RunChecked({"ip", "route", "show", "198.18.0.0/15"});
    if (!routes.ok()) return routes.status();
    if (routes->find("blackhole") == std::string::npos) {
      if (auto r = common::RunChecked({"ip", "route", "add", "blackhole", "198.18.0.0/15"});
          !r.ok()) {
        return r.status();
      }
    }
    const std::string pid = std::to_string(::getpid());
    auto ns =
        std::unique_ptr<BenchNamespace>(new BenchNamespace("synq-" + pid + "-bench", "sqb" + pid));
    const std::vector<std::vector<std::string>> steps = {
        {"ip", "netns", "add", ns->name_},
        {"ip", "link", "add", ns->veth_, "type", "veth", "peer", "name", "eth0", "netns",
         ns->name_},
        {"ip", "addr", "add", std::string(kRootIp) + "/30", "dev", ns->veth_},
        {"ip", "link", "set", ns->veth_, "up"},
        {"ip", "-n", ns->name_, "addr", "add", std::string(kNsIp) + "/30", "dev", "eth0"},
        {"ip", "-n", ns->name_, "link", "set", "eth0", "up"},
        {"ip", "-n", ns->name_, "link", "set", "lo", "up"},
        {"ip", "netns", "exec", ns->name_, "sysctl", "-qw", "net.core.somaxconn=65535"},
    };
    for (const auto& argv : steps) {
      if (auto r = common::RunChecked(argv); !r.ok()) return r.status();  // ~ deletes it
    }
    return ns;
  }

  ~BenchNamespace() {
    (void)common::RunCommand({"ip", "netns", "del", name_});
    (void)common::RunCommand({"ip", "link", "del", veth_});  // gone with the namespace normally
  }

  const std::string& name() const { return name_; }

 private:
  BenchNamespace(std::string name, std::string veth)
      : name_(std::move(name)), veth_(std::move(veth)) {}

  // synq-<pid>-bench of bench processes that are gone.
  static void RemoveStale() {
    auto list = common::RunCommand({"ip", "netns", "list"});
    if (!list.ok()) return;
    std::istringstream lines(list->output);
    std::string line;
    while (std::getline(lines, line)) {
      const std::string name = line.substr(0, line.find(' '));
      if (name.rfind("synq-", 0) != 0 || name.size() < 12 ||
          name.compare(name.size() - 6, 6, "-bench") != 0) {
        continue;
      }
      const std::string pid = name.substr(5, name.size() - 11);
      if (::kill(std::stoi(pid), 0) != 0 && errno == ESRCH) {
        (void)common::RunCommand({"ip", "netns", "del", name});
      }
    }
  }

  std::string name_;
  std::string veth_;
};

// ---------------------------------------------------------------------------------------------

class CapacityBench : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: a network namespace and a veth pair";
    baseline_ = ReadSockStat();
    PinTo(0);
  }
  void TearDown() override { PinTo(-1); }

  SockStat baseline_;
};

std::string Machine() {
  utsname u{};
  ::uname(&u);
  return absl::StrCat(std::thread::hardware_concurrency(), " cores, kernel ", u.release);
}

void PrintRatio(const char* what, double minimal, double synq, double target) {
  std::printf("%-44s minimal %9.0f/s  synq %9.0f/s  synq/minimal %.2f (target >= %.2f)\n", what,
              minimal, synq, synq / minimal, target);
}

// One connect-and-hold comparison at `n` held (all towards one destination). synq binds its own
// source ports (what the agent plans); with `kernel_ports_too` it also runs with the kernel's
// choice of port, to show what the binding costs or saves.
void HoldComparison(uint64_t n, const SockStat& baseline, const char* label, double target,
                    bool kernel_ports_too) {
  std::vector<double> rates[3];  // minimal, synq, synq with kernel ports
  const int sides = kernel_ports_too ? 3 : 2;
  for (int round = 0; round < S().rounds; ++round) {
    for (int i = 0; i < sides; ++i) {
      const int side = (i + round) % sides;  // rotate which goes first
      Settle(baseline);
      auto server = ServerProcess::Start("127.0.0.1", ServerMode::kHold, 1);
      ASSERT_TRUE(server.ok()) << server.status();
      static constexpr const char* kNames[] = {"minimal", "synq", "synq (kernel ports)"};
      double seconds = 0;
      if (side == 0) {
        LoopResult r = MinimalLoop((*server)->address(), n, kConcurrency, /*churn=*/false);
        for (int fd : r.held) CloseRst(fd);
        ASSERT_EQ(r.established, n) << label << " minimal: failed " << r.failed;
        seconds = r.seconds;
      } else {
        SynqRun r = RunSynq(BaseSpec((*server)->address(), n), /*kernel_ports=*/side == 2);
        ASSERT_TRUE(r.status.ok()) << label << " " << kNames[side] << ": " << r.status;
        ASSERT_EQ(r.established, n) << label << " " << kNames[side];
        seconds = r.seconds;
      }
      rates[side].push_back(n / seconds);
      std::printf("  %s round %d %s: %.0f/s (%.3f s)\n", label, round, kNames[side], n / seconds,
                  seconds);
    }
  }
  PrintRatio(label, Median(rates[0]), Median(rates[1]), target);
  if (kernel_ports_too) {
    std::printf("%-44s synq with the kernel's ports %9.0f/s  /minimal %.2f\n", "", Median(rates[2]),
                Median(rates[2]) / Median(rates[0]));
  }
}

TEST_F(CapacityBench, ConnectAndHoldBelowThePortSearch) {
  HoldComparison(S().hold, baseline_, "hold (below port search)", 0.95, true);
}

TEST_F(CapacityBench, ConnectAndHoldInThePortSearchRegime) {
  HoldComparison(S().port_search, baseline_, "hold towards one destination (port search)", 2.5,
                 false);
}

TEST_F(CapacityBench, ChurnWithCloseRst) {
  const uint64_t n = S().churn;
  std::vector<double> minimal_rates;
  std::vector<double> synq_rates;
  for (int round = 0; round < S().rounds; ++round) {
    for (int side = 0; side < 2; ++side) {
      const bool synq_side = (side + round) % 2 == 1;
      Settle(baseline_);
      auto server = ServerProcess::Start("127.0.0.1", ServerMode::kClose, 1);
      ASSERT_TRUE(server.ok()) << server.status();
      if (!synq_side) {
        LoopResult r = MinimalLoop((*server)->address(), n, kConcurrency, /*churn=*/true);
        ASSERT_EQ(r.established, n) << "churn minimal: failed " << r.failed;
        minimal_rates.push_back(n / r.seconds);
        std::printf("  churn round %d minimal: %.0f/s\n", round, n / r.seconds);
      } else {
        FloodSpec spec = BaseSpec((*server)->address(), n);
        spec.close = agent::CloseMode::kRst;
        spec.lifetime = 0ns;
        SynqRun r = RunSynq(spec);
        ASSERT_TRUE(r.status.ok()) << "churn synq: " << r.status;
        ASSERT_EQ(r.established, n) << "churn synq";
        ASSERT_EQ(r.closed, n) << "churn synq: every connection closed by the flood (rst)";
        synq_rates.push_back(n / r.seconds);
        std::printf("  churn round %d synq:    %.0f/s (closed %lu)\n", round, n / r.seconds,
                    static_cast<unsigned long>(r.closed));
      }
    }
  }
  PrintRatio("churn (close rst)", Median(minimal_rates), Median(synq_rates), 0.95);
}

// The epoll engine (the fallback where io_uring is refused) against the io_uring engine, same
// process, same server setup, the order rotated per round: churn with close rst and
// connect-and-hold with the ports synq binds (as the agent plans them), and connect-and-hold
// towards one destination past half of ip_local_port_range with the kernel's ports (one ring,
// RunFlood without source ports), where each connect() searches longer for a free port: epoll
// pays that search inside connect() on the flood's own thread.
void EngineComparison(const char* label, uint64_t n, ServerMode mode, agent::CloseMode close,
                      bool kernel_ports, const SockStat& baseline) {
  std::vector<double> rates[2];  // io_uring, epoll
  static constexpr agent::FloodEngine kEngines[] = {agent::FloodEngine::kIoUring,
                                                    agent::FloodEngine::kEpoll};
  static constexpr const char* kNames[] = {"io_uring", "epoll"};
  for (int round = 0; round < S().rounds; ++round) {
    for (int i = 0; i < 2; ++i) {
      const int side = (i + round) % 2;
      Settle(baseline);
      auto server = ServerProcess::Start("127.0.0.1", mode, 1);
      ASSERT_TRUE(server.ok()) << server.status();
      FloodSpec spec = BaseSpec((*server)->address(), n);
      spec.engine = kEngines[side];
      spec.close = close;
      SynqRun r = RunSynq(spec, kernel_ports);
      ASSERT_TRUE(r.status.ok()) << label << " " << kNames[side] << ": " << r.status;
      ASSERT_EQ(r.established, n) << label << " " << kNames[side];
      if (close != agent::CloseMode::kKeep) {
        ASSERT_EQ(r.closed, n) << label << " " << kNames[side];
      }
      rates[side].push_back(n / r.seconds);
      std::printf("  %s round %d %s: %.0f/s (%.3f s)\n", label, round, kNames[side], n / r.seconds,
                  r.seconds);
    }
  }
  std::printf("%-44s io_uring %9.0f/s  epoll %9.0f/s  epoll/io_uring %.2f\n", label,
              Median(rates[0]), Median(rates[1]), Median(rates[1]) / Median(rates[0]));
}

TEST_F(CapacityBench, EpollEngineAgainstIoUringEngine) {
  EngineComparison("engines: churn (close rst)", S().churn, ServerMode::kClose,
                   agent::CloseMode::kRst, /*kernel_ports=*/false, baseline_);
  EngineComparison("engines: hold (synq's ports)", S().hold, ServerMode::kHold,
                   agent::CloseMode::kKeep, /*kernel_ports=*/false, baseline_);
  EngineComparison("engines: hold one destination (synq's ports)", S().port_search,
                   ServerMode::kHold, agent::CloseMode::kKeep, /*kernel_ports=*/false, baseline_);
  EngineComparison("engines: hold one destination (kernel ports)", S().port_search,
                   ServerMode::kHold, agent::CloseMode::kKeep, /*kernel_ports=*/true, baseline_);
}

TEST_F(CapacityBench, TwoThreadsAgainstAListenerInAnotherNamespace) {
  PinTo(-1);  // both cores for the client's threads
  auto ns = BenchNamespace::Create();
  ASSERT_TRUE(ns.ok()) << ns.status();
  const uint64_t n = S().threads;
  std::vector<double> minimal[2];
  std::vector<double> synq[2];
  for (int round = 0; round < S().rounds; ++round) {
    for (int threads = 1; threads <= 2; ++threads) {
      for (int side = 0; side < 2; ++side) {
        Settle(baseline_);
        auto server =
            ServerProcess::Start(BenchNamespace::kNsIp, ServerMode::kClose, -1, (*ns)->name());
        ASSERT_TRUE(server.ok()) << server.status();
        if (side == 0) {
          LoopResult r =
              MinimalLoopThreads((*server)->address(), n, kConcurrency, /*churn=*/true, threads);
          ASSERT_EQ(r.established, n) << "minimal threads " << threads << " failed " << r.failed;
          minimal[threads - 1].push_back(n / r.seconds);
          std::printf("  netns churn round %d minimal %d thread(s): %.0f/s\n", round, threads,
                      n / r.seconds);
        } else {
          FloodSpec spec = BaseSpec((*server)->address(), n);
          spec.close = agent::CloseMode::kRst;
          spec.threads = threads;
          SynqRun r = RunSynq(spec);
          ASSERT_EQ(r.threads, static_cast<uint32_t>(threads));
          ASSERT_TRUE(r.status.ok()) << "synq threads " << threads << ": " << r.status;
          ASSERT_EQ(r.established, n) << "synq threads " << threads;
          synq[threads - 1].push_back(n / r.seconds);
          std::printf("  netns churn round %d synq %d thread(s):    %.0f/s\n", round, threads,
                      n / r.seconds);
        }
      }
    }
  }
  const double m1 = Median(minimal[0]), m2 = Median(minimal[1]);
  const double s1 = Median(synq[0]), s2 = Median(synq[1]);
  std::printf("%-44s 1 thread %9.0f/s  2 threads %9.0f/s  2/1 %.2f\n",
              "minimal loop, listener in a namespace", m1, m2, m2 / m1);
  std::printf("%-44s 1 thread %9.0f/s  2 threads %9.0f/s  2/1 %.2f (target >= 1.70)\n",
              "synq, listener in a namespace", s1, s2, s2 / s1);
}

// Samples malloc's view of user memory (arena + mmapped chunks) every millisecond; keeps the peak.
class MallocPeak {
 public:
  MallocPeak() : before_(InUse()), peak_(before_) {
    thread_ = std::thread([this] {
      while (!stop_.load()) {
        peak_ = std::max(peak_.load(), InUse());
        std::this_thread::sleep_for(1ms);
      }
    });
  }
  ~MallocPeak() { Stop(); }
  void Stop() {
    if (thread_.joinable()) {
      stop_ = true;
      thread_.join();
    }
    peak_ = std::max(peak_.load(), InUse());
  }
  static size_t InUse() {
    const struct mallinfo2 m = ::mallinfo2();
    return m.uordblks + m.hblkhd;
  }
  size_t before() const { return before_; }
  size_t peak() const { return peak_; }

 private:
  size_t before_;
  std::atomic<size_t> peak_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST_F(CapacityBench, UserMemoryPerHeldSocket) {
  const uint64_t n = S().memory;
  auto server = ServerProcess::Start("127.0.0.1", ServerMode::kHold, 1);
  ASSERT_TRUE(server.ok()) << server.status();
  FloodSpec spec = BaseSpec((*server)->address(), n);
  spec.hold = 300ms;  // every socket held at once for a while, sampled throughout
  // The engine alone, on the spec the agent plans (its own source ports).
  absl::StatusOr<agent::FloodPlan> plan = Plan(spec);
  ASSERT_TRUE(plan.ok()) << plan.status();
  spec = plan->spec;
  const long slab_before = SlabBytes();
  std::atomic<bool> stop{false};
  std::optional<MallocPeak> sampler(std::in_place);
  absl::StatusOr<FloodResult> result =
      agent::RunFlood(spec, std::chrono::system_clock::now(), stop);
  sampler->Stop();
  // Still open here (the result holds them): the kernel's side of the same sockets.
  const long slab_held = SlabBytes();
  const size_t retained = MallocPeak::InUse();
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->established, n);
  const double peak_per = static_cast<double>(sampler->peak() - sampler->before()) / n;
  const double retained_per =
      static_cast<double>(retained > sampler->before() ? retained - sampler->before() : 0) / n;
  std::printf(
      "%-44s peak %.1f B/socket, retained with the result %.1f B/socket "
      "(target <= 64; %lu held)\n",
      "user memory per held socket (engine)", peak_per, retained_per,
      static_cast<unsigned long>(n));
  std::printf("%-44s %.0f B/connection (slab, client and server socket, noisy)\n",
              "kernel memory per held connection",
              static_cast<double>(slab_held - slab_before) / n);
  ReleaseHeld(*result);
}

}  // namespace
}  // namespace synq::bench

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--full") == 0) synq::bench::g_full = true;
  }
  std::printf("capacity bench (%s): %s, medians of %d, %u connects in flight\n",
              synq::bench::g_full ? "full" : "smoke", synq::bench::Machine().c_str(),
              synq::bench::S().rounds, synq::bench::kConcurrency);
  return RUN_ALL_TESTS();
}
