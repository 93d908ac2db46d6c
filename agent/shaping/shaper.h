// Link shaping (delay, jitter, loss, rate) on a host's interface, with two backends behind one
// interface: netem through rtnetlink, and an NFQUEUE userspace delayer for kernels without netem.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/kernel/netns_identity.h"
#include "common/modes.h"

namespace synq::agent {

using common::ShapingBackend;

// Packets leaving `interface` (towards `destination`, a prefix like "198.18.0.3/32", if set).
struct ShapingRequest {
  std::string interface;
  ShapingBackend backend = ShapingBackend::kAuto;
  std::chrono::nanoseconds delay{0};
  std::chrono::nanoseconds jitter{0};
  double loss_percent = 0;
  uint64_t rate_bits_per_second = 0;
  std::string destination;
};

// What is in force, read back from the kernel or the delayer; backend is never kAuto.
using ShapingApplied = ShapingRequest;

// Whether a backend can work on this host, and why not.
struct BackendSupport {
  bool available = false;
  std::string reason;  // "sch_netem not in this kernel"
};
BackendSupport ProbeNetem();
BackendSupport ProbeNfqueue();

// Owns every shaping rule of a run; removing restores the interface. Journals what it installs
// (journal_path) so a restarted agent can remove leftovers with RemoveShapingFromJournal.
class ShapingSet {
 public:
  explicit ShapingSet(std::string journal_path);
  ~ShapingSet();  // Removes everything.
  ShapingSet(const ShapingSet&) = delete;
  ShapingSet& operator=(const ShapingSet&) = delete;

  // Validates and installs all requests; on failure removes what it installed. A backend that
  // cannot work here fails with FailedPrecondition naming the reason. Rules go on interfaces of
  // the calling thread's network namespace. A journal at journal_path that this set did not
  // write (a crashed run's) is FailedPrecondition: RemoveShapingFromJournal it first.
  absl::StatusOr<std::vector<ShapingApplied>> Apply(const std::vector<ShapingRequest>& requests);
  // Removes every rule and stops delayers. Idempotent.
  absl::Status Remove();

  class Rule;

 private:
  std::string journal_path_;
  std::vector<std::unique_ptr<Rule>> rules_;
  bool wrote_journal_ = false;  // the journal at journal_path_ is this set's, not a leftover
  NetnsIdentity netns_;         // where this set installs (the first Apply's thread namespace)
};

// Removes qdiscs / firewall rules a crashed agent left behind, per its journal, in the calling
// thread's network namespace; deletes the journal when all is gone. No journal: OK. A journal
// that does not parse (DataLoss) or was written in another network namespace
// (FailedPrecondition) is kept, and the error names its path and why.
absl::Status RemoveShapingFromJournal(const std::string& journal_path);

}  // namespace synq::agent
