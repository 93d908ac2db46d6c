#include "agent/shaping/shaper.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/pkt_sched.h>
#include <net/if.h>
#include <sched.h>
#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/shaping/netem_netlink.h"
#include "agent/shaping/nfqueue_delayer.h"
#include "agent/shaping/nfqueue_rule.h"
#include "agent/shaping/shaping_journal.h"
#include "common/command.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"
#include "spdlog/spdlog.h"

namespace synq::agent {

using common::FindProgram;
using common::UniqueFd;

// One installed shaping rule. Holds the network namespace it was installed in, so removal
// reaches the same interface even when called from another thread (a namespace is per thread).
class ShapingSet::Rule {
 public:
  Rule(ShapingApplied applied, JournalEntry journal, UniqueFd netns)
      : applied_(std::move(applied)), journal_(std::move(journal)), netns_(std::move(netns)) {}
  virtual ~Rule() = default;
  const ShapingApplied& applied() const { return applied_; }
  const JournalEntry& journal() const { return journal_; }
  // Removes the rule; OK when already gone. Idempotent.
  virtual absl::Status Remove() = 0;

 protected:
  ShapingApplied applied_;
  JournalEntry journal_;
  UniqueFd netns_;
};

namespace {

constexpr char kThreadNetns[] = "/proc/thread-self/ns/net";

UniqueFd OpenCurrentNetns() { return UniqueFd(::open(kThreadNetns, O_RDONLY | O_CLOEXEC)); }

// -1 when fd is the calling thread's namespace already (no setns needed), else fd.
int NetnsToJoin(const UniqueFd& fd) {
  struct stat ours, theirs;
  if (!fd || ::fstat(fd.get(), &theirs) != 0 || ::stat(kThreadNetns, &ours) != 0) return -1;
  return (ours.st_ino == theirs.st_ino && ours.st_dev == theirs.st_dev) ? -1 : fd.get();
}

// Runs f in the namespace netns_fd (when >= 0) on a short-lived thread.
absl::Status RunInNetns(int netns_fd, const std::function<absl::Status()>& f) {
  if (netns_fd < 0) return f();
  absl::Status status;
  std::thread([&] {
    if (::setns(netns_fd, CLONE_NEWNET) != 0) {
      status = absl::ErrnoToStatus(errno, "setns(CLONE_NEWNET)");
      return;
    }
    status = f();
  }).join();
  return status;
}

absl::Status ValidateDestination(const std::string& destination) {
  if (destination.empty()) return absl::OkStatus();
  auto bad = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("destination: '", destination, "' is not an address or prefix"));
  };
  const size_t slash = destination.find('/');
  const std::string address = destination.substr(0, slash);
  in6_addr buf;
  int max_prefix = 0;
  if (::inet_pton(AF_INET, address.c_str(), &buf) == 1) {
    max_prefix = 32;
  } else if (::inet_pton(AF_INET6, address.c_str(), &buf) == 1) {
    max_prefix = 128;
  } else {
    return bad();
  }
  if (slash != std::string::npos) {
    int prefix = -1;
    if (!absl::SimpleAtoi(destination.substr(slash + 1), &prefix) || prefix < 0 ||
        prefix > max_prefix) {
      return bad();
    }
  }
  return absl::OkStatus();
}

absl::Status Validate(const ShapingRequest& r) {
  if (r.interface.empty()) return absl::InvalidArgumentError("interface: must not be empty");
  if (r.delay.count() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("delay: must be >= 0 (got ", r.delay.count(), " ns)"));
  }
  if (r.jitter.count() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("jitter: must be >= 0 (got ", r.jitter.count(), " ns)"));
  }
  if (r.jitter > r.delay) {
    return absl::InvalidArgumentError(absl::StrCat("jitter: must be <= delay (", r.jitter.count(),
                                                   " ns > ", r.delay.count(), " ns)"));
  }
  if (!(r.loss_percent >= 0 && r.loss_percent <= 100)) {  // also rejects NaN
    return absl::InvalidArgumentError(
        absl::StrCat("loss_percent: must be in [0, 100] (got ", r.loss_percent, ")"));
  }
  return ValidateDestination(r.destination);
}

bool IsNoop(const ShapingRequest& r) {
  return r.delay.count() == 0 && r.jitter.count() == 0 && r.loss_percent == 0 &&
         r.rate_bits_per_second == 0;
}

// The netem probe creates a namespace; its answer does not change while the process lives.
BackendSupport CachedNetemSupport() {
  static std::mutex mu;
  static std::optional<BackendSupport> cached;
  std::lock_guard<std::mutex> lock(mu);
  if (!cached) cached = ProbeNetem();
  return *cached;
}

class NetemRule final : public ShapingSet::Rule {
 public:
  using Rule::Rule;
  ~NetemRule() override {
    if (absl::Status s = Remove(); !s.ok()) spdlog::error("shaping: {}", s.ToString());
  }
  absl::Status Remove() override {
    if (removed_) return absl::OkStatus();
    absl::Status status =
        RunInNetns(NetnsToJoin(netns_), [&] { return RemoveNetem(journal_.ifindex); });
    if (!status.ok() && !absl::IsNotFound(status)) return status;
    removed_ = true;
    return absl::OkStatus();
  }

 private:
  bool removed_ = false;
};

class NfqueueRule final : public ShapingSet::Rule {
 public:
  NfqueueRule(ShapingApplied applied, JournalEntry journal, UniqueFd netns,
              std::unique_ptr<NfqueueDelayer> delayer)
      : Rule(std::move(applied), std::move(journal), std::move(netns)),
        delayer_(std::move(delayer)) {}
  ~NfqueueRule() override {
    if (absl::Status s = Remove(); !s.ok()) spdlog::error("shaping: {}", s.ToString());
    // Whatever happened, the delayer stops with its owner (NfqueueDelayer's destructor).
  }

  // Adds the firewall rules; on failure removes the ones it added. An ip6tables rule for "all
  // egress" is best effort: a host without IPv6 filtering still gets its IPv4 shaped.
  absl::Status Install() {
    const bool all_egress = applied_.destination.empty();
    for (const auto& rule : journal_.rules) {
      absl::Status status = AddIptablesRule(rule, NetnsToJoin(netns_));
      if (status.ok()) {
        installed_.push_back(rule);
        continue;
      }
      if (all_egress && rule.family == IpFamily::kIpv6) {
        spdlog::warn("shaping: IPv6 egress of {} not shaped: {}", applied_.interface,
                     status.ToString());
        continue;
      }
      return status;  // the destructor or Remove() deletes what was added
    }
    return absl::OkStatus();
  }

  // The rules go first, so nothing new is queued; then the delayer lets out what it holds.
  absl::Status Remove() override {
    while (!installed_.empty()) {
      absl::Status status = RemoveIptablesRule(installed_.back(), NetnsToJoin(netns_));
      if (!status.ok() && !absl::IsNotFound(status)) return status;  // keep delaying, not dropping
      installed_.pop_back();
    }
    if (delayer_ != nullptr) {
      delayer_->Stop();
      const DelayerStats stats = delayer_->stats();
      spdlog::info("shaping: nfqueue {} on {}: {} packets, {} accepted, {} dropped, {} overruns",
                   delayer_->queue_num(), applied_.interface, stats.received, stats.accepted,
                   stats.dropped, stats.receive_errors);
      delayer_.reset();
    }
    return absl::OkStatus();
  }

 private:
  std::unique_ptr<NfqueueDelayer> delayer_;
  std::vector<IptablesRule> installed_;
};

ShapingBackend ResolveAuto(ShapingBackend backend) {
  if (backend != ShapingBackend::kAuto) return backend;
  return CachedNetemSupport().available ? ShapingBackend::kNetem : ShapingBackend::kNfqueue;
}

absl::Status CheckSupport(ShapingBackend backend) {
  const BackendSupport support =
      backend == ShapingBackend::kNetem ? CachedNetemSupport() : ProbeNfqueue();
  if (support.available) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat(backend == ShapingBackend::kNetem ? "netem" : "nfqueue",
                   " backend unavailable: ", support.reason));
}

struct Plan {
  ShapingRequest request;
  int ifindex = 0;
  bool noop = false;
};

using JournalWriter = std::function<absl::Status(const JournalEntry&)>;

absl::StatusOr<std::unique_ptr<ShapingSet::Rule>> InstallNetemRule(const Plan& plan,
                                                                   const JournalWriter& journal) {
  JournalEntry entry;
  entry.backend = ShapingBackend::kNetem;
  entry.ifindex = plan.ifindex;
  entry.ifname = plan.request.interface;
  entry.handle = kNetemHandle;
  RETURN_IF_ERROR(journal(entry));
  RETURN_IF_ERROR(InstallNetem(plan.ifindex, NetemParamsFrom(plan.request)));

  ShapingApplied applied = plan.request;
  applied.backend = ShapingBackend::kNetem;
  if (!applied.destination.empty()) {
    spdlog::warn("shaping: netem shapes all egress of {}, not only towards {}", applied.interface,
                 applied.destination);
    applied.destination.clear();  // what is in force: all egress
  }
  // Read back what the kernel holds rather than echo the request.
  auto undo = absl::MakeCleanup([&] {
    if (absl::Status s = RemoveNetem(plan.ifindex); !s.ok()) {
      spdlog::error("shaping: undoing netem on {}: {}", plan.request.interface, s.ToString());
    }
  });
  ASSIGN_OR_RETURN(std::vector<QdiscInfo> qdiscs, ListQdiscs(plan.ifindex));
  for (const auto& q : qdiscs) {
    if (q.parent != TC_H_ROOT || q.handle != kNetemHandle || !q.netem) continue;
    ShapingApplied read = applied;
    read.delay = std::chrono::nanoseconds(q.netem->latency_ns);
    read.jitter = std::chrono::nanoseconds(q.netem->jitter_ns);
    read.loss_percent = LossProbabilityToPercent(q.netem->loss);
    read.rate_bits_per_second = q.netem->rate_bytes_per_second * 8;
    std::move(undo).Cancel();
    return std::make_unique<NetemRule>(read, entry, OpenCurrentNetns());
  }
  return absl::InternalError(
      absl::StrCat("netem on ", plan.request.interface, " installed but not read back"));
}

absl::StatusOr<std::unique_ptr<ShapingSet::Rule>> InstallNfqueueRule(const Plan& plan,
                                                                     const JournalWriter& journal) {
  const ShapingRequest& r = plan.request;
  DelayerParams params{r.delay, r.jitter, r.loss_percent, r.rate_bits_per_second};
  // The queue is bound before the rule exists: a rule without a listener drops packets.
  ASSIGN_OR_RETURN(std::unique_ptr<NfqueueDelayer> delayer,
                   NfqueueDelayer::Start(params, SuggestQueueNumber()));
  JournalEntry entry;
  entry.backend = ShapingBackend::kNfqueue;
  entry.queue_num = delayer->queue_num();
  entry.rules = NfqueueRules(r.interface, r.destination, delayer->queue_num());
  RETURN_IF_ERROR(journal(entry));

  ShapingApplied applied = r;
  applied.backend = ShapingBackend::kNfqueue;
  const DelayerParams& in_force = delayer->params();
  applied.delay = in_force.delay;
  applied.jitter = in_force.jitter;
  applied.loss_percent = in_force.loss_percent;
  applied.rate_bits_per_second = in_force.rate_bits_per_second;
  auto rule = std::make_unique<NfqueueRule>(applied, entry, OpenCurrentNetns(), std::move(delayer));
  RETURN_IF_ERROR(rule->Install());
  return rule;
}

}  // namespace

BackendSupport ProbeNetem() { return ProbeNetemInPrivateNamespace(); }

BackendSupport ProbeNfqueue() {
  if (FindProgram("iptables").empty()) return {false, "iptables not found"};
  if (absl::Status s = ProbeQueueBinding(); !s.ok()) {
    return {false, absl::StrCat("cannot bind an NFQUEUE: ", s.message())};
  }
  return {true, ""};
}

ShapingSet::ShapingSet(std::string journal_path) : journal_path_(std::move(journal_path)) {}

ShapingSet::~ShapingSet() {
  if (absl::Status s = Remove(); !s.ok()) {
    spdlog::error("shaping: removing on destruction: {} (journal {} kept)", s.ToString(),
                  journal_path_);
  }
}

absl::StatusOr<std::vector<ShapingApplied>> ShapingSet::Apply(
    const std::vector<ShapingRequest>& requests) {
  // Everything is checked before anything is installed.
  std::vector<Plan> plans;
  for (const auto& request : requests) {
    RETURN_IF_ERROR(Validate(request));
    Plan plan{request, static_cast<int>(::if_nametoindex(request.interface.c_str())),
              IsNoop(request)};
    if (plan.ifindex == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("interface '", request.interface, "' not found"));
    }
    plan.request.backend = ResolveAuto(request.backend);
    if (!plan.noop) RETURN_IF_ERROR(CheckSupport(plan.request.backend));
    plans.push_back(std::move(plan));
  }
  if (!wrote_journal_) {
    // A journal this set did not write holds a crashed run's leftovers (or cannot be read):
    // overwriting it would lose them.
    auto leftovers = ReadJournal(journal_path_);
    if (!absl::IsNotFound(leftovers.status()) && !(leftovers.ok() && leftovers->entries.empty())) {
      return absl::FailedPreconditionError(
          absl::StrCat("shaping journal ", journal_path_, " is left by an earlier run (",
                       leftovers.ok() ? "it lists rules not removed" : leftovers.status().message(),
                       "); the agent restores it at start, or remove it by hand"));
    }
    ASSIGN_OR_RETURN(netns_, CurrentNetns());
  }

  const size_t first_new = rules_.size();
  auto journal_with = [&](const JournalEntry& pending) {
    std::vector<JournalEntry> entries;
    for (const auto& rule : rules_) entries.push_back(rule->journal());
    entries.push_back(pending);
    RETURN_IF_ERROR(WriteJournal(journal_path_, {netns_, entries}));
    wrote_journal_ = true;
    return absl::OkStatus();
  };
  // On failure: remove what this call installed and journal what is left.
  auto rollback = absl::MakeCleanup([&] {
    while (rules_.size() > first_new) {
      if (absl::Status s = rules_.back()->Remove(); !s.ok()) {
        spdlog::error("shaping: rolling back: {}", s.ToString());
        break;  // keep it (and its journal entry) for Remove()/the journal
      }
      rules_.pop_back();
    }
    std::vector<JournalEntry> entries;
    for (const auto& rule : rules_) entries.push_back(rule->journal());
    absl::Status s = entries.empty() ? DeleteJournal(journal_path_)
                                     : WriteJournal(journal_path_, {netns_, entries});
    wrote_journal_ = !entries.empty();
    if (!s.ok()) spdlog::error("shaping: journal after rollback: {}", s.ToString());
  });

  std::vector<ShapingApplied> applied;
  for (const auto& plan : plans) {
    if (plan.noop) {
      applied.push_back(plan.request);
      continue;
    }
    absl::StatusOr<std::unique_ptr<Rule>> rule = plan.request.backend == ShapingBackend::kNetem
                                                     ? InstallNetemRule(plan, journal_with)
                                                     : InstallNfqueueRule(plan, journal_with);
    if (!rule.ok()) {
      return absl::Status(rule.status().code(),
                          absl::StrCat(plan.request.interface, ": ", rule.status().message()));
    }
    applied.push_back((*rule)->applied());
    rules_.push_back(*std::move(rule));
  }
  std::move(rollback).Cancel();
  return applied;
}

absl::Status ShapingSet::Remove() {
  absl::Status first_error;
  std::vector<std::unique_ptr<Rule>> kept;
  while (!rules_.empty()) {
    absl::Status s = rules_.back()->Remove();
    if (!s.ok()) {
      if (first_error.ok()) first_error = s;
      kept.insert(kept.begin(), std::move(rules_.back()));
    }
    rules_.pop_back();
  }
  rules_ = std::move(kept);
  if (rules_.empty()) {
    // Only a journal this set wrote: an untouched one belongs to a crashed run.
    if (wrote_journal_) {
      absl::Status s = DeleteJournal(journal_path_);
      if (first_error.ok()) first_error = s;
      wrote_journal_ = false;
    }
    return first_error;
  }
  std::vector<JournalEntry> entries;
  for (const auto& rule : rules_) entries.push_back(rule->journal());
  absl::Status s = WriteJournal(journal_path_, {netns_, entries});
  if (first_error.ok()) first_error = s;
  return first_error;
}

absl::Status RemoveShapingFromJournal(const std::string& journal_path) {
  absl::StatusOr<ShapingJournal> journal = ReadJournal(journal_path);
  if (absl::IsNotFound(journal.status())) return absl::OkStatus();
  if (!journal.ok()) return journal.status();
  ASSIGN_OR_RETURN(NetnsIdentity here, CurrentNetns());
  if (!(journal->netns == here)) {
    // Removing "the same" rules here would touch a namespace that was never changed, and
    // deleting the journal would lose the real leftovers.
    return absl::FailedPreconditionError(
        absl::StrCat("shaping journal ", journal_path, " was written in network namespace ",
                     journal->netns.ToString(), ", this agent runs in ", here.ToString(),
                     "; kept: start the agent in that namespace to restore it"));
  }

  absl::Status first_error;
  std::vector<JournalEntry> left;
  for (auto it = journal->entries.rbegin(); it != journal->entries.rend(); ++it) {
    const JournalEntry& e = *it;
    absl::Status status;
    if (e.backend == ShapingBackend::kNetem) {
      // A qdisc dies with its interface; a same-named interface created since is not ours.
      char name[IF_NAMESIZE] = {};
      if (::if_indextoname(static_cast<unsigned>(e.ifindex), name) != nullptr && e.ifname == name) {
        status = RemoveNetem(e.ifindex);
      }
    } else {
      for (const auto& rule : e.rules) {
        absl::Status s = RemoveIptablesRule(rule);
        if (!s.ok() && !absl::IsNotFound(s) && status.ok()) status = s;
      }
    }
    if (!status.ok() && !absl::IsNotFound(status)) {
      if (first_error.ok()) first_error = status;
      left.insert(left.begin(), e);
    }
  }
  if (left.empty()) {
    absl::Status s = DeleteJournal(journal_path);
    return first_error.ok() ? s : first_error;
  }
  absl::Status s = WriteJournal(journal_path, {here, left});
  return first_error.ok() ? s : first_error;
}

}  // namespace synq::agent
