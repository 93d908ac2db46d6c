#include "controller/run/target_resolver.h"

#include "absl/strings/str_cat.h"
#include "common/net_address.h"

namespace synq::controller {

absl::StatusOr<result::ResolvedTarget> ResolveTarget(const FloodDef& flood,
                                                     const ListenerDef* listener,
                                                     const BoundListener* bound,
                                                     const std::string& listener_host_address) {
  result::ResolvedTarget target;
  if (listener == nullptr) {
    auto address = common::ParseSocketAddress(flood.target);
    if (!address.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("floods.", flood.name, ".target: ", address.status().message()));
    }
    target.ip = address->HostString();
    target.port = address->port();
    return target;
  }
  if (bound == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("floods.", flood.name, ".target: listener '",
                                                      listener->name, "' was not started"));
  }
  target.listener = listener->name;
  target.port = bound->port;
  const bool wildcard = bound->ip.empty() || bound->ip == "0.0.0.0" || bound->ip == "::";
  if (!wildcard) {
    target.ip = bound->ip;
  } else if (listener->host == flood.host) {
    target.ip = bound->ip == "::" ? "::1" : "127.0.0.1";
  } else {
    target.ip = listener_host_address;
  }
  return target;
}

}  // namespace synq::controller
