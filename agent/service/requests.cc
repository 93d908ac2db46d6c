#include "agent/service/requests.h"

#include <cmath>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "agent/flood/flood_proto.h"
#include "common/limits.h"
#include "common/status_macros.h"
#include "proto/proto_enums.h"
#include "proto/proto_time.h"

namespace synq::agent {

using std::chrono::nanoseconds;

namespace {

absl::Status Invalid(absl::string_view path, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", message));
}

std::string Ns(nanoseconds d) { return absl::StrCat(d.count(), " ns"); }

// `d` within [min, max], else an error naming `path` and the bounds.
absl::Status CheckDuration(absl::string_view path, nanoseconds d, nanoseconds min,
                           nanoseconds max) {
  if (d < min || d > max) {
    return Invalid(path,
                   absl::StrCat("must be between ", Ns(min), " and ", Ns(max), ", got ", Ns(d)));
  }
  return absl::OkStatus();
}

absl::Status CheckCount(absl::string_view path, int count) {
  if (count > common::kMaxItemsPerRequest) {
    return Invalid(path, absl::StrCat("at most ", common::kMaxItemsPerRequest, " items, got ",
                                      count));
  }
  return absl::OkStatus();
}

// The pacing and pause fields of a listener, each error naming listeners.NAME.FIELD.
absl::Status CheckListenerSpec(const ListenerSpec& spec) {
  const std::string path = absl::StrCat("listeners.", spec.name, ".");
  const bool has_interval = spec.accept_interval.count() != 0;
  const bool has_rate = spec.accept_rate != 0;
  if (spec.accept == AcceptMode::kPaced) {
    if (has_interval && has_rate) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, "accept_rate: give accept_rate or accept_interval, not both (accept_interval ",
          spec.accept_interval.count(), " ns, accept_rate ", spec.accept_rate, "/s)"));
    }
    if (!has_interval && !has_rate) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, "accept_rate: accept: paced needs accept_rate or accept_interval"));
    }
    if (has_rate && !(spec.accept_rate > 0 && spec.accept_rate <= common::kMaxAcceptRate)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, "accept_rate: must be > 0 and at most ", common::kMaxAcceptRate,
                       " per second, got ", spec.accept_rate));
    }
    if (has_interval) {
      RETURN_IF_ERROR(CheckDuration(absl::StrCat(path, "accept_interval"), spec.accept_interval,
                                    nanoseconds(1), common::kMaxDuration));
    }
  } else if (has_interval || has_rate) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, has_rate ? "accept_rate" : "accept_interval", ": only used with accept: paced"));
  }
  if (spec.pauses.size() > static_cast<size_t>(common::kMaxPauses)) {
    return absl::InvalidArgumentError(absl::StrCat(path, "pauses: at most ", common::kMaxPauses,
                                                   ", got ", spec.pauses.size()));
  }
  for (size_t i = 0; i < spec.pauses.size(); ++i) {
    const PauseWindow& p = spec.pauses[i];
    if (p.at.count() < 0 || p.length.count() <= 0 || p.at > common::kMaxDuration ||
        p.length > common::kMaxDuration) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, "pauses[", i, "]: needs at in [0, ", Ns(common::kMaxDuration),
          "] and length in (0, ", Ns(common::kMaxDuration), "], got at ", p.at.count(),
          " ns, length ", p.length.count(), " ns"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<BeginRunSpec> ToBeginRun(const v1::BeginRunRequest& request) {
  BeginRunSpec spec{proto::FromProto(request.sample_interval()), proto::FromProto(request.lease())};
  RETURN_IF_ERROR(CheckDuration("sample_interval", spec.sample_interval, common::kMinSampleInterval,
                                common::kMaxDuration));
  RETURN_IF_ERROR(CheckDuration("lease", spec.lease, nanoseconds(0), common::kMaxLease));
  return spec;
}

absl::StatusOr<std::map<std::string, int64_t>> ToSettings(const v1::ApplySettingsRequest& request) {
  RETURN_IF_ERROR(CheckCount("settings", request.settings_size()));
  std::map<std::string, int64_t> settings;
  for (int i = 0; i < request.settings_size(); ++i) {
    const v1::Setting& s = request.settings(i);
    const std::string path = absl::StrCat("settings[", i, "]");
    if (s.key().empty() || s.key().size() > common::kMaxNameLength) {
      return Invalid(path, absl::StrCat("key must have 1 to ", common::kMaxNameLength,
                                        " characters, got ", s.key().size()));
    }
    if (!settings.emplace(s.key(), s.value()).second) {
      return Invalid(path, absl::StrCat("key ", s.key(), " given twice"));
    }
  }
  return settings;
}

absl::StatusOr<std::vector<ShapingRequest>> ToShapingRequests(
    const v1::ApplyShapingRequest& request) {
  RETURN_IF_ERROR(CheckCount("shapings", request.shapings_size()));
  std::vector<ShapingRequest> specs;
  for (int i = 0; i < request.shapings_size(); ++i) {
    const v1::Shaping& s = request.shapings(i);
    const std::string path = absl::StrCat("shapings[", i, "]");
    absl::StatusOr<common::ShapingBackend> backend = proto::FromProto(s.backend());
    if (!backend.ok()) return Invalid(path, backend.status().message());
    ShapingRequest spec{s.interface(),         *backend,
                        proto::FromProto(s.delay()), proto::FromProto(s.jitter()),
                        s.loss_percent(),      s.rate_bits_per_second(),
                        s.destination()};
    if (spec.interface.empty() || spec.interface.size() > common::kMaxInterfaceName) {
      return Invalid(absl::StrCat(path, ".interface"),
                     absl::StrCat("must have 1 to ", common::kMaxInterfaceName,
                                  " characters, got ", spec.interface.size()));
    }
    RETURN_IF_ERROR(CheckDuration(absl::StrCat(path, ".delay"), spec.delay, nanoseconds(0),
                                  common::kMaxShapingDelay));
    RETURN_IF_ERROR(CheckDuration(absl::StrCat(path, ".jitter"), spec.jitter, nanoseconds(0),
                                  common::kMaxShapingDelay));
    if (!(spec.loss_percent >= 0 && spec.loss_percent <= 100)) {
      return Invalid(absl::StrCat(path, ".loss_percent"),
                     absl::StrCat("must be between 0 and 100, got ", spec.loss_percent));
    }
    if (spec.destination.size() > common::kMaxNameLength) {
      return Invalid(absl::StrCat(path, ".destination"),
                     absl::StrCat("longer than ", common::kMaxNameLength, " characters"));
    }
    specs.push_back(std::move(spec));
  }
  return specs;
}

absl::StatusOr<ListenerSpec> ToListenerSpec(const v1::StartListenerRequest& request) {
  const v1::ListenerSpec& l = request.listener();
  absl::StatusOr<common::AcceptMode> mode = proto::FromProto(l.accept());
  if (!mode.ok()) return mode.status();
  if (l.port() > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("listener.port: must be 0..65535, got ", l.port()));
  }
  if (l.name().size() > common::kMaxNameLength) {
    return Invalid("listener.name", absl::StrCat("longer than ", common::kMaxNameLength,
                                                 " characters"));
  }
  if (l.pauses_size() > common::kMaxPauses) {
    return Invalid("listener.pauses",
                   absl::StrCat("at most ", common::kMaxPauses, ", got ", l.pauses_size()));
  }
  ListenerSpec spec;
  spec.name = l.name();
  spec.address = l.address().empty() ? "0.0.0.0" : l.address();
  spec.port = static_cast<uint16_t>(l.port());
  spec.backlog = l.backlog();
  spec.accept = *mode;
  spec.accept_interval = proto::FromProto(l.accept_interval());
  spec.accept_rate = l.accept_rate();
  spec.close_on_accept = l.close_on_accept();
  for (const auto& p : l.pauses()) {
    spec.pauses.push_back({proto::FromProto(p.at()), proto::FromProto(p.length())});
  }
  RETURN_IF_ERROR(CheckListenerSpec(spec));
  return spec;
}

absl::StatusOr<ObserveSpec> ToObserveSpec(const v1::ObserveListenerRequest& request) {
  if (request.port() == 0 || request.port() > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("port: must be 1..65535, got ", request.port()));
  }
  if (request.name().empty() || request.name().size() > common::kMaxNameLength) {
    return Invalid("name", absl::StrCat("required, at most ", common::kMaxNameLength,
                                        " characters"));
  }
  return ObserveSpec{request.name(), static_cast<uint16_t>(request.port()), request.address()};
}

absl::StatusOr<FloodsSpec> ToFloodsSpec(const v1::StartFloodsRequest& request) {
  RETURN_IF_ERROR(CheckCount("floods", request.floods_size()));
  FloodsSpec out;
  if (request.has_start_at()) out.start_at = proto::FromProto(request.start_at());
  for (const v1::FloodSpec& f : request.floods()) {
    absl::StatusOr<FloodSpec> spec = FromProto(f);
    if (!spec.ok()) return spec.status();
    out.floods.push_back(*std::move(spec));
  }
  return out;
}

}  // namespace synq::agent
