// Turns a scenario with host groups into one of concrete hosts: each group becomes member hosts
// GROUP-1..GROUP-N (in sorted endpoint order), and what is placed on a group is placed on every
// member under "NAME@MEMBER". The plan says which rows merge into which.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "controller/scenario/scenario.h"

namespace synq::controller::fleet {

// Group name -> the endpoints of its members (sorted by ExpandGroups).
using GroupMembers = std::map<std::string, std::vector<std::string>>;

// Which rows of a run are members of a group, and of which merged row.
struct GroupPlan {
  struct Member {
    std::string group;
    std::string endpoint;
  };
  std::map<std::string, Member> hosts;  // member host -> its group and endpoint
  // merged key -> member row keys, in member order; and the group each merged row is about.
  std::map<std::string, std::vector<std::string>> floods;
  std::map<std::string, std::vector<std::string>> listeners;  // listeners and observes
  std::map<std::string, std::string> row_group;  // "floods.f1" / "listeners.l1" -> group
  bool empty() const { return hosts.empty(); }
};

struct Expansion {
  Scenario scenario;
  GroupPlan plan;
};

// Member host names: "clients-1", ...
std::string MemberName(const std::string& group, size_t index);
// Row key of what a member runs: "f1@clients-1".
std::string MemberKey(const std::string& item, const std::string& member);

// Expands every group of `scenario` with `members` (every group must have at least one).
// Floods and listeners on a group run once per member; settings, shaping and captures of a group
// apply to every member. A flood on a single host whose target is a listener (or observed
// listener) on a group floods every member's listener: one flood per target member, keyed by
// the target member ("f1@servers-2"), merged under the flood's name. A flood on a group targeting
// a listener on a group is refused (the loader says so first). A scenario without groups comes
// back unchanged with an empty plan.
absl::StatusOr<Expansion> ExpandGroups(const Scenario& scenario, const GroupMembers& members);

}  // namespace synq::controller::fleet
