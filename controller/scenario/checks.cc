#include "controller/scenario/checks.h"

#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/net_address.h"
#include "controller/scenario/paths.h"
#include "controller/scenario/values.h"

namespace synq::controller::scenario {

std::vector<CrossError> CheckCrossFields(const Scenario& s) {
  using Kind = FieldRef::Kind;
  std::vector<CrossError> out;
  for (size_t i = 0; i < s.listeners.size(); ++i) {
    const ListenerDef& l = s.listeners[i];
    const std::vector<FieldRef> pace = {{Kind::kListener, i, "", "accept"},
                                        {Kind::kListener, i, "", "accept_interval"},
                                        {Kind::kListener, i, "", "accept_rate"}};
    if (l.accept == AcceptMode::kPaced && l.accept_interval.count() <= 0 && l.accept_rate <= 0) {
      out.push_back({{JoinPath(ItemPath("listeners", s.listeners, i), "accept_interval"),
                      "accept: paced needs accept_interval > 0 or accept_rate > 0"},
                     pace});
    }
    if (l.accept == AcceptMode::kPaced && l.accept_interval.count() > 0 && l.accept_rate > 0) {
      out.push_back(
          {{JoinPath(ItemPath("listeners", s.listeners, i), "accept_rate"),
            absl::StrCat("give accept_rate or accept_interval, not both (accept_rate ",
                         l.accept_rate, "/s, accept_interval ",
                         std::chrono::duration<double, std::milli>(l.accept_interval).count(),
                         " ms)")},
           pace});
    }
  }
  for (size_t i = 0; i < s.floods.size(); ++i) {
    const FloodDef& f = s.floods[i];
    if (f.target.empty() || s.FindListener(f.target) != nullptr) continue;
    std::string message;
    if (!absl::StrContains(f.target, ':')) {
      message = absl::StrCat("no listener named ", Quote(f.target));
    } else {
      absl::StatusOr<common::SocketAddress> address = common::ParseSocketAddress(f.target);
      if (!address.ok()) {
        message =
            absl::StrCat("neither a listener name nor ADDRESS:PORT: ", address.status().message());
      } else if (address->port() == 0) {
        message = absl::StrCat(Quote(f.target), ": port 0 cannot be connected to");
      }
    }
    if (message.empty()) continue;
    out.push_back({{JoinPath(ItemPath("floods", s.floods, i), "target"), std::move(message)},
                   {{Kind::kFlood, i, "", "target"}}});
  }
  return out;
}

}  // namespace synq::controller::scenario
