// Proves the NFQUEUE backend on the real kernel, between two network namespaces this test makes
// (veth, 198.18.0.0/24): a 200 ms delay adds 200 ms (+-2 ms) to the TCP handshake, jitter keeps
// order, the rate paces, 100% loss blocks, Remove / the destructor / RemoveShapingFromJournal
// after a crash leave no rule behind, bad requests are refused by field, and netem asked for on
// a kernel without sch_netem is a FailedPrecondition.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/shaping/nfqueue_rule.h"
#include "agent/shaping/shaper.h"
#include "agent/shaping/shaping_journal.h"
#include "common/command.h"
#include "common/unique_fd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace synq::agent {
using common::CommandResult;
using common::FindProgram;
using common::RunCommand;

namespace {

using common::UniqueFd;
using std::chrono::milliseconds;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kAddrA[] = "198.18.0.1";
constexpr char kAddrB[] = "198.18.0.2";
constexpr double kAskedDelayMs = 200;
constexpr char kCrashJournalEnv[] = "SYNQ_SHAPING_CRASH_JOURNAL";
constexpr char kCrashInterfaceEnv[] = "SYNQ_SHAPING_CRASH_INTERFACE";
constexpr int kCrashedAgentExit = 42;

// A thread that lives in a network namespace and runs what it is given there: sockets created
// and shaping applied on it belong to that namespace (CLONE_NEWNET is per thread).
class NetnsThread {
 public:
  explicit NetnsThread(const std::string& netns)
      : fd_(::open(("/var/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC)) {
    thread_ = std::thread([this] {
      joined_ = fd_.valid() && ::setns(fd_.get(), CLONE_NEWNET) == 0;
      Loop();
    });
  }
  ~NetnsThread() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  bool joined() {
    return Run([this] { return joined_; });
  }
  int fd() const { return fd_.get(); }

  template <typename F>
  auto Run(F f) -> decltype(f()) {
    using R = decltype(f());
    if constexpr (std::is_void_v<R>) {
      RunVoid(f);
    } else {
      std::optional<R> result;
      RunVoid([&] { result.emplace(f()); });
      return std::move(*result);
    }
  }

 private:
  void RunVoid(std::function<void()> fn) {
    bool done = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.push_back([&] {
        fn();
        std::lock_guard<std::mutex> l(mu_);
        done = true;
        cv_.notify_all();
      });
    }
    cv_.notify_all();
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return done; });
  }
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || !tasks_.empty(); });
      if (tasks_.empty()) return;
      auto task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
  }

  UniqueFd fd_;
  bool joined_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stop_ = false;
  std::thread thread_;
};

CommandResult Exec(const std::vector<std::string>& argv, int netns_fd = -1) {
  auto r = RunCommand(argv, netns_fd);
  if (!r.ok()) return {-1, std::string(r.status().message())};
  return *r;
}

double Percentile50(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? -1 : v[v.size() / 2];
}

class ShapingNfqueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces, iptables)";
    for (const char* tool : {"ip", "iptables"}) {
      if (FindProgram(tool).empty()) GTEST_SKIP() << tool << " not installed";
    }
    EnsureBlackholeRoute();
    CleanStaleNamespaces();
    static int counter = 0;
    const std::string id = absl::StrCat(::getpid(), "-", counter++);
    ns_a_ = absl::StrCat(kPrefix, id, "a");
    ns_b_ = absl::StrCat(kPrefix, id, "b");
    veth_a_ = absl::StrCat("shp", ::getpid() % 10000000, "a");
    veth_b_ = absl::StrCat("shp", ::getpid() % 10000000, "b");
    for (const auto& ns : {ns_a_, ns_b_}) {
      ASSERT_EQ(Exec({"ip", "netns", "add", ns}).exit_code, 0);
      created_.push_back(ns);
    }
    auto ok = [](const CommandResult& r) { return r.exit_code == 0 ? "" : r.output; };
    ASSERT_EQ(ok(Exec({"ip", "link", "add", veth_a_, "netns", ns_a_, "type", "veth", "peer", "name",
                       veth_b_, "netns", ns_b_})),
              "");
    for (const auto& [ns, dev, addr] :
         {std::tuple{ns_a_, veth_a_, kAddrA}, std::tuple{ns_b_, veth_b_, kAddrB}}) {
      ASSERT_EQ(ok(Exec({"ip", "-n", ns, "addr", "add", std::string(addr) + "/24", "dev", dev})),
                "");
      ASSERT_EQ(ok(Exec({"ip", "-n", ns, "link", "set", dev, "up"})), "");
      ASSERT_EQ(ok(Exec({"ip", "-n", ns, "link", "set", "lo", "up"})), "");
    }
    a_ = std::make_unique<NetnsThread>(ns_a_);
    b_ = std::make_unique<NetnsThread>(ns_b_);
    ASSERT_TRUE(a_->joined() && b_->joined()) << "setns into the test namespaces failed";

    char tmpl[] = "/tmp/synq-shaping-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    journal_ = dir_ + "/state/shaping.json";  // the parent does not exist yet on purpose

    listener_ = a_->Run([] { return UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)); });
    ASSERT_TRUE(listener_.valid());
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    ::inet_pton(AF_INET, kAddrA, &addr.sin_addr);
    ASSERT_EQ(::bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ASSERT_EQ(::listen(listener_.get(), 4096), 0);
    socklen_t len = sizeof(addr);
    ASSERT_EQ(::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);
    port_ = ntohs(addr.sin_port);
    ::fcntl(listener_.get(), F_SETFL, O_NONBLOCK);
  }

  void TearDown() override {
    listener_.Reset();
    a_.reset();
    b_.reset();
    for (const auto& ns : created_) Exec({"ip", "netns", "del", ns});
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  static void EnsureBlackholeRoute() {
    // 198.18.0.0/15 must never leak out of the root namespace (added once, left in place).
    if (Exec({"ip", "route", "show", "198.18.0.0/15"}).output.empty()) {
      Exec({"ip", "route", "add", "blackhole", "198.18.0.0/15"});
    }
  }

  // Namespaces of earlier runs of this test whose process is gone.
  static void CleanStaleNamespaces() {
    // synq-shp<pid>-<n>a|b (no std::regex: GCC 12's trips -Wmaybe-uninitialized under ASan).
    for (auto line : absl::StrSplit(Exec({"ip", "netns", "list"}).output, '\n')) {
      const std::string name(line.substr(0, line.find(' ')));
      if (!absl::StartsWith(name, kPrefix)) continue;
      const std::string rest = name.substr(std::strlen(kPrefix));
      const std::string pid = rest.substr(0, rest.find('-'));
      if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
      if (!std::filesystem::exists("/proc/" + pid)) Exec({"ip", "netns", "del", name});
    }
  }

  ShapingRequest Request(milliseconds delay) const {
    ShapingRequest r;
    r.interface = veth_a_;
    r.backend = ShapingBackend::kNfqueue;
    r.delay = delay;
    return r;
  }

  // The time for a TCP handshake from B to A's listener; nullopt when it does not complete
  // within timeout. Only A's egress (the SYN-ACK) is shaped.
  std::optional<double> ConnectMs(milliseconds timeout = milliseconds(2000)) {
    UniqueFd fd = b_->Run(
        [] { return UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)); });
    if (!fd) return std::nullopt;
    const linger no_linger{1, 0};  // close with RST: no FIN exchange left over between samples
    ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &no_linger, sizeof(no_linger));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port_);
    ::inet_pton(AF_INET, kAddrA, &addr.sin_addr);
    const auto start = std::chrono::steady_clock::now();
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 &&
        errno != EINPROGRESS) {
      return std::nullopt;
    }
    pollfd p{fd.get(), POLLOUT, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
    const auto end = std::chrono::steady_clock::now();
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    DrainAccepts();
    if (err != 0) return std::nullopt;
    return std::chrono::duration<double, std::milli>(end - start).count();
  }

  void DrainAccepts() {
    for (;;) {
      const int c = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      ::close(c);
    }
  }

  std::vector<double> ConnectSamples(int n) {
    std::vector<double> out;
    for (int i = 0; i < n; ++i) {
      auto ms = ConnectMs();
      EXPECT_TRUE(ms.has_value()) << "handshake " << i << " did not complete";
      if (ms) out.push_back(*ms);
    }
    return out;
  }

  std::string MangleRulesInA() {
    return Exec({"iptables", "-w", "-t", "mangle", "-S"}, a_->fd()).output;
  }

  bool JournalExists() const { return std::filesystem::exists(journal_); }

  static constexpr char kPrefix[] = "synq-shp";
  std::string ns_a_, ns_b_, veth_a_, veth_b_;
  std::vector<std::string> created_;
  std::unique_ptr<NetnsThread> a_, b_;
  std::string dir_, journal_;
  UniqueFd listener_;
  uint16_t port_ = 0;
};

TEST_F(ShapingNfqueueTest, DelayAddsTwoHundredMsToHandshakeAndRemoveRestoresBaseline) {
  const double baseline = Percentile50(ConnectSamples(20));
  ASSERT_GE(baseline, 0);

  auto set = a_->Run([&] { return std::make_unique<ShapingSet>(journal_); });
  auto applied = a_->Run([&] { return set->Apply({Request(milliseconds(200))}); });
  ASSERT_TRUE(applied.ok()) << applied.status();
  ASSERT_EQ(applied->size(), 1u);
  EXPECT_EQ((*applied)[0].backend, ShapingBackend::kNfqueue);
  EXPECT_EQ((*applied)[0].delay, milliseconds(200));
  EXPECT_EQ((*applied)[0].interface, veth_a_);
  // The journal holds the rule in force as data, and the kernel holds it with --queue-bypass.
  auto journal = ReadJournal(journal_);
  ASSERT_TRUE(journal.ok()) << journal.status();
  ASSERT_EQ(journal->entries.size(), 1u);
  const JournalEntry& entry = journal->entries[0];
  EXPECT_EQ(entry.backend, ShapingBackend::kNfqueue);
  ASSERT_FALSE(entry.rules.empty());
  EXPECT_EQ(entry.rules[0], NfqueueRules(veth_a_, "", entry.queue_num)[0]);
  EXPECT_THAT(MangleRulesInA(),
              HasSubstr(absl::StrCat("-A POSTROUTING -o ", veth_a_, " -j NFQUEUE --queue-num ",
                                     entry.queue_num, " --queue-bypass")));

  const std::vector<double> shaped = ConnectSamples(20);
  const double p50 = Percentile50(shaped);
  const double added = p50 - baseline;
  std::printf("baseline p50 %.3f ms, shaped p50 %.3f ms (min %.3f, max %.3f), added %.3f ms\n",
              baseline, p50, *std::min_element(shaped.begin(), shaped.end()),
              *std::max_element(shaped.begin(), shaped.end()), added);
  EXPECT_NEAR(added, kAskedDelayMs, 2.0);

  EXPECT_TRUE(a_->Run([&] { return set->Remove(); }).ok());
  EXPECT_THAT(MangleRulesInA(), Not(HasSubstr("NFQUEUE")));
  EXPECT_FALSE(JournalExists());
  const double after = Percentile50(ConnectSamples(10));
  std::printf("after Remove p50 %.3f ms\n", after);
  EXPECT_LT(after, baseline + 2.0);
  EXPECT_TRUE(a_->Run([&] { return set->Remove(); }).ok()) << "Remove is idempotent";
  a_->Run([&] { set.reset(); });
}

TEST_F(ShapingNfqueueTest, DestructorRemovesRuleAndJournal) {
  auto set = a_->Run([&] { return std::make_unique<ShapingSet>(journal_); });
  ShapingRequest r = Request(milliseconds(50));
  r.destination = std::string(kAddrB) + "/32";
  auto applied = a_->Run([&] { return set->Apply({r}); });
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ((*applied)[0].destination, std::string(kAddrB) + "/32");
  EXPECT_THAT(MangleRulesInA(), HasSubstr("-d " + std::string(kAddrB) + "/32"));
  auto shaped = ConnectMs();
  ASSERT_TRUE(shaped.has_value());
  EXPECT_GT(*shaped, 45.0);

  a_->Run([&] { set.reset(); });
  EXPECT_THAT(MangleRulesInA(), Not(HasSubstr("NFQUEUE")));
  EXPECT_FALSE(JournalExists());
  auto after = ConnectMs();
  ASSERT_TRUE(after.has_value());
  EXPECT_LT(*after, 10.0);
}

TEST_F(ShapingNfqueueTest, JournalRemovesRuleLeftByCrashedAgent) {
  // The "agent": this binary re-executed in namespace A (a fresh process: no fork of a
  // multi-threaded one), which applies and dies without any cleanup; its delayer dies with it.
  char exe[4096] = {};
  ASSERT_GT(::readlink("/proc/self/exe", exe, sizeof(exe) - 1), 0);
  auto agent = RunCommand({"env", absl::StrCat(kCrashJournalEnv, "=", journal_),
                           absl::StrCat(kCrashInterfaceEnv, "=", veth_a_), exe,
                           "--gtest_filter=ShapingCrashedAgent.AppliesAndDiesWhenAsked"},
                          a_->fd());
  ASSERT_TRUE(agent.ok()) << agent.status();
  ASSERT_EQ(agent->exit_code, kCrashedAgentExit) << agent->output;

  ASSERT_THAT(MangleRulesInA(), HasSubstr("NFQUEUE"));
  ASSERT_TRUE(JournalExists());
  // Nobody listens on the queue any more: with --queue-bypass the kernel lets the SYN-ACK
  // through unshaped (nf_queue finds no listener and accepts the verdict itself), so a dead agent
  // does not blackhole the interface. Without it this connect would time out.
  auto while_dead = ConnectMs(milliseconds(500));
  ASSERT_TRUE(while_dead.has_value()) << "a dead agent's NFQUEUE rule drops traffic";
  EXPECT_LT(*while_dead, 10.0);

  // A second set must not overwrite the crashed run's journal.
  auto refused = a_->Run([&] {
    ShapingSet set(journal_);
    return set.Apply({Request(milliseconds(10))}).status();
  });
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  EXPECT_TRUE(JournalExists());

  auto removed = a_->Run([&] { return RemoveShapingFromJournal(journal_); });
  EXPECT_TRUE(removed.ok()) << removed;
  EXPECT_THAT(MangleRulesInA(), Not(HasSubstr("NFQUEUE")));
  EXPECT_FALSE(JournalExists());
  auto after = ConnectMs();
  ASSERT_TRUE(after.has_value());
  EXPECT_LT(*after, 10.0);
}

TEST_F(ShapingNfqueueTest, FullLossBlocksHandshakeUntilRemoved) {
  auto set = a_->Run([&] { return std::make_unique<ShapingSet>(journal_); });
  ShapingRequest r = Request(milliseconds(0));
  r.loss_percent = 100;
  auto applied = a_->Run([&] { return set->Apply({r}); });
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ((*applied)[0].loss_percent, 100);
  EXPECT_FALSE(ConnectMs(milliseconds(700)).has_value());
  ASSERT_TRUE(a_->Run([&] { return set->Remove(); }).ok());
  EXPECT_TRUE(ConnectMs().has_value());
  a_->Run([&] { set.reset(); });
}

// UDP from A to B: numbered datagrams sent back to back, timed on arrival.
struct Arrival {
  int seq;
  std::chrono::steady_clock::time_point at;
};
std::vector<Arrival> SendBurst(NetnsThread& a, NetnsThread& b, int count, size_t payload,
                               milliseconds wait) {
  UniqueFd rx = b.Run([] { return UniqueFd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)); });
  UniqueFd tx = a.Run([] { return UniqueFd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)); });
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  ::inet_pton(AF_INET, kAddrB, &addr.sin_addr);
  if (::bind(rx.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return {};
  socklen_t len = sizeof(addr);
  ::getsockname(rx.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  std::vector<char> buf(payload, 'x');
  for (int i = 0; i < count; ++i) {
    std::memcpy(buf.data(), &i, sizeof(i));
    ::sendto(tx.get(), buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  }
  std::vector<Arrival> got;
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (static_cast<int>(got.size()) < count) {
    const auto left =
        std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{rx.get(), POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) break;
    int seq = -1;
    if (::recv(rx.get(), buf.data(), buf.size(), 0) >= static_cast<ssize_t>(sizeof(seq))) {
      std::memcpy(&seq, buf.data(), sizeof(seq));
      got.push_back({seq, std::chrono::steady_clock::now()});
    }
  }
  return got;
}

TEST_F(ShapingNfqueueTest, JitterNeverReorders) {
  auto set = a_->Run([&] { return std::make_unique<ShapingSet>(journal_); });
  ShapingRequest r = Request(milliseconds(30));
  r.jitter = milliseconds(25);
  ASSERT_TRUE(a_->Run([&] { return set->Apply({r}); }).ok());
  const auto got = SendBurst(*a_, *b_, 200, 64, milliseconds(2000));
  ASSERT_EQ(got.size(), 200u);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(got[i].seq, i);
  a_->Run([&] { set.reset(); });
}

TEST_F(ShapingNfqueueTest, RatePacesBySerializationTime) {
  auto set = a_->Run([&] { return std::make_unique<ShapingSet>(journal_); });
  ShapingRequest r = Request(milliseconds(0));
  r.rate_bits_per_second = 1'000'000;
  ASSERT_TRUE(a_->Run([&] { return set->Apply({r}); }).ok());
  // 1222 bytes of payload + 28 of UDP/IPv4 headers = 1250 bytes = 10 ms at 1 Mbit/s.
  const auto got = SendBurst(*a_, *b_, 21, 1222, milliseconds(2000));
  ASSERT_EQ(got.size(), 21u);
  const double spread =
      std::chrono::duration<double, std::milli>(got.back().at - got.front().at).count();
  std::printf("21 x 1250 bytes at 1 Mbit/s: first to last %.3f ms (expect 200)\n", spread);
  EXPECT_NEAR(spread, 200.0, 5.0);
  a_->Run([&] { set.reset(); });
}

TEST_F(ShapingNfqueueTest, NothingToDoInstallsNothing) {
  ShapingRequest r = Request(milliseconds(0));
  r.backend = ShapingBackend::kAuto;
  auto applied = a_->Run([&] {
    ShapingSet set(journal_);
    auto result = set.Apply({r});
    EXPECT_FALSE(JournalExists());
    EXPECT_THAT(MangleRulesInA(), Not(HasSubstr("NFQUEUE")));
    return result;
  });
  ASSERT_TRUE(applied.ok()) << applied.status();
  ASSERT_EQ(applied->size(), 1u);
  // Never kAuto: the backend auto would have used.
  EXPECT_EQ((*applied)[0].backend,
            ProbeNetem().available ? ShapingBackend::kNetem : ShapingBackend::kNfqueue);
}

TEST_F(ShapingNfqueueTest, InvalidRequestAmongValidOnesInstallsNothing) {
  ShapingRequest bad = Request(milliseconds(10));
  bad.loss_percent = 101;
  auto status = a_->Run([&] {
    return ShapingSet(journal_).Apply({Request(milliseconds(10)), bad}).status();
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("loss_percent"));
  EXPECT_THAT(MangleRulesInA(), Not(HasSubstr("NFQUEUE")));
  EXPECT_FALSE(JournalExists());
}

TEST_F(ShapingNfqueueTest, NetemExplicitlyWithoutSchNetemIsFailedPrecondition) {
  ShapingRequest r = Request(milliseconds(10));
  r.backend = ShapingBackend::kNetem;
  auto result = a_->Run([&] {
    ShapingSet set(journal_);
    auto applied = set.Apply({r});
    if (applied.ok()) {
      // A kernel with sch_netem: what the kernel holds reads back as asked.
      EXPECT_EQ((*applied)[0].backend, ShapingBackend::kNetem);
      EXPECT_EQ((*applied)[0].delay, milliseconds(10));
    }
    return applied.status();
  });
  if (ProbeNetem().available) {
    EXPECT_TRUE(result.ok()) << result;
  } else {
    EXPECT_EQ(result.code(), absl::StatusCode::kFailedPrecondition) << result;
    EXPECT_THAT(std::string(result.message()), HasSubstr("sch_netem"));
    EXPECT_FALSE(JournalExists());
  }
}

// Validation happens before anything touches the host, so it runs in the root namespace.
TEST(ShapingValidation, ErrorsNameTheField) {
  auto error_of = [](ShapingRequest r) {
    ShapingSet set("/nonexistent-dir-never-written/journal.json");
    return set.Apply({r}).status();
  };
  ShapingRequest ok;
  ok.interface = "lo";
  ok.delay = milliseconds(10);
  struct Case {
    std::function<void(ShapingRequest&)> mutate;
    std::string field;
  };
  const std::vector<Case> cases = {
      {[](ShapingRequest& r) { r.interface = ""; }, "interface"},
      {[](ShapingRequest& r) { r.delay = milliseconds(-1); }, "delay"},
      {[](ShapingRequest& r) { r.jitter = milliseconds(-1); }, "jitter"},
      {[](ShapingRequest& r) { r.jitter = milliseconds(11); }, "jitter"},
      {[](ShapingRequest& r) { r.loss_percent = 100.5; }, "loss_percent"},
      {[](ShapingRequest& r) { r.loss_percent = -1; }, "loss_percent"},
      {[](ShapingRequest& r) { r.destination = "not-an-address"; }, "destination"},
      {[](ShapingRequest& r) { r.destination = "198.18.0.2/33"; }, "destination"},
      {[](ShapingRequest& r) { r.interface = "nope0"; }, "interface 'nope0' not found"},
  };
  for (const auto& c : cases) {
    ShapingRequest r = ok;
    c.mutate(r);
    const absl::Status s = error_of(r);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.field << ": " << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.field));
  }
}

// Not a test of its own: JournalRemovesRuleLeftByCrashedAgent re-executes this binary with
// these variables set, in its namespace, to play an agent that shapes and then crashes.
TEST(ShapingCrashedAgent, AppliesAndDiesWhenAsked) {
  const char* journal = std::getenv(kCrashJournalEnv);
  const char* interface = std::getenv(kCrashInterfaceEnv);
  if (journal == nullptr || interface == nullptr) return;
  ShapingRequest r;
  r.interface = interface;
  r.backend = ShapingBackend::kNfqueue;
  r.delay = milliseconds(100);
  auto* leaked = new ShapingSet(journal);
  const auto applied = leaked->Apply({r});
  std::fprintf(stderr, "crashing agent: %s\n", applied.status().ToString().c_str());
  std::_Exit(applied.ok() ? kCrashedAgentExit : 1);
}

}  // namespace
}  // namespace synq::agent
