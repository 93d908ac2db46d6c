#include "controller/run/flood_request.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "proto/proto_time.h"

namespace synq::controller {

namespace v1 = ::synq::agent::v1;

absl::Status FillSustainedFloodSpec(const FloodDef& f, const v1::HostInfo& host,
                                    bool target_is_ipv6, bool keep_records, v1::FloodSpec* spec) {
  if (f.duration.count() > 0) proto::ToProto(f.duration, spec->mutable_duration());
  switch (f.rate_kind) {
    case RateKind::kConstant:
      spec->set_rate(f.rate);
      break;
    case RateKind::kRamp:
      spec->set_rate(0);
      spec->mutable_ramp()->set_from(f.ramp_from);
      spec->mutable_ramp()->set_to(f.ramp_to);
      proto::ToProto(f.ramp_over, spec->mutable_ramp()->mutable_over());
      break;
    case RateKind::kSteps:
      spec->set_rate(0);
      for (double r : f.steps) spec->mutable_steps()->add_rates(r);
      proto::ToProto(f.steps_each, spec->mutable_steps()->mutable_each());
      break;
  }
  if (f.lifetime.count() > 0) proto::ToProto(f.lifetime, spec->mutable_lifetime());
  switch (f.close) {
    case CloseMode::kKeep:
      spec->set_close(v1::CLOSE_MODE_KEEP);
      break;
    case CloseMode::kRst:
      spec->set_close(v1::CLOSE_MODE_RST);
      break;
    case CloseMode::kFin:
      spec->set_close(v1::CLOSE_MODE_FIN);
      break;
  }
  spec->set_threads(static_cast<uint32_t>(f.threads));
  for (const std::string& s : f.sources) spec->add_sources(s);
  if (f.source_count > 0) {
    std::vector<std::string> same_family;
    for (const std::string& a : host.addresses()) {
      if (absl::StrContains(a, ':') == target_is_ipv6) same_family.push_back(a);
    }
    if (static_cast<int64_t>(same_family.size()) < f.source_count) {
      return absl::InvalidArgumentError(absl::StrCat(
          "floods.", f.name, ".sources: ", f.source_count, " ", target_is_ipv6 ? "IPv6" : "IPv4",
          " addresses asked, host '", f.host, "' has ", same_family.size(), " (",
          same_family.empty() ? "none" : absl::StrJoin(same_family, ", "), ")"));
    }
    for (int64_t i = 0; i < f.source_count; ++i) spec->add_sources(same_family[i]);
  }
  spec->set_keep_records(keep_records);
  return absl::OkStatus();
}

}  // namespace synq::controller
