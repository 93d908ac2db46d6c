// The `discover:` URI of a host group, in gRPC's naming: "dns:///NAME:PORT" asks the system's
// resolvers, "dns://SERVER[:PORT]/NAME:PORT" asks the DNS server SERVER (an IP address).
#pragma once

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "controller/scenario/scenario.h"

namespace synq::controller::scenario {

// Parses a discover URI; the error says what is wrong with it (the caller adds the field path).
absl::StatusOr<DiscoverTarget> ParseDiscoverTarget(absl::string_view uri);

}  // namespace synq::controller::scenario
