#include "agent/flood/flood_proto.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/limits.h"
#include "common/status_macros.h"
#include "proto/proto_time.h"

namespace synq::agent {

using proto::FromProto;
using proto::ToProto;

namespace {

absl::StatusOr<Outcome> OutcomeFromProto(v1::Outcome o) {
  switch (o) {
    case v1::OUTCOME_ESTABLISHED:
      return Outcome::kEstablished;
    case v1::OUTCOME_RESET:
      return Outcome::kReset;
    case v1::OUTCOME_REFUSED:
      return Outcome::kRefused;
    case v1::OUTCOME_TIMED_OUT:
      return Outcome::kTimedOut;
    case v1::OUTCOME_ERROR:
      return Outcome::kError;
    default:
      return absl::InvalidArgumentError(absl::StrCat("unknown connection outcome ", o));
  }
}

void SecondToProto(const FloodSecond& s, v1::FloodSecond* out) {
  out->set_second(s.second);
  out->set_launched(s.launched);
  out->set_established(s.established);
  out->set_reset(s.reset);
  out->set_refused(s.refused);
  out->set_timed_out(s.timed_out);
  out->set_errors(s.errors);
  out->set_late(s.late);
  out->set_dropped(s.dropped);
  out->set_answered(s.answered);
  ToProto(s.connect_latency_us, out->mutable_connect_latency());
}

FloodSecond SecondFromProto(const v1::FloodSecond& s) {
  FloodSecond out;
  out.second = s.second();
  out.launched = s.launched();
  out.established = s.established();
  out.reset = s.reset();
  out.refused = s.refused();
  out.timed_out = s.timed_out();
  out.errors = s.errors();
  out.late = s.late();
  out.dropped = s.dropped();
  out.answered = s.answered();
  out.connect_latency_us = FromProto(s.connect_latency());
  return out;
}

}  // namespace

v1::Outcome ToProto(Outcome o) {
  switch (o) {
    case Outcome::kEstablished:
      return v1::OUTCOME_ESTABLISHED;
    case Outcome::kReset:
      return v1::OUTCOME_RESET;
    case Outcome::kRefused:
      return v1::OUTCOME_REFUSED;
    case Outcome::kTimedOut:
      return v1::OUTCOME_TIMED_OUT;
    case Outcome::kError:
      return v1::OUTCOME_ERROR;
  }
  return v1::OUTCOME_UNSPECIFIED;
}

CloseMode FromProto(v1::CloseMode c) {
  switch (c) {
    case v1::CLOSE_MODE_RST:
      return CloseMode::kRst;
    case v1::CLOSE_MODE_FIN:
      return CloseMode::kFin;
    default:  // UNSPECIFIED = KEEP
      return CloseMode::kKeep;
  }
}

v1::CloseMode ToProto(CloseMode c) {
  switch (c) {
    case CloseMode::kKeep:
      return v1::CLOSE_MODE_KEEP;
    case CloseMode::kRst:
      return v1::CLOSE_MODE_RST;
    case CloseMode::kFin:
      return v1::CLOSE_MODE_FIN;
  }
  return v1::CLOSE_MODE_UNSPECIFIED;
}

void ToProto(const common::Histogram& h, v1::Histogram* out) {
  out->set_sub_bucket_bits(h.sub_bucket_bits());
  out->set_count(h.count());
  out->set_max_us(h.max());
  for (const auto& [index, n] : h.buckets()) (*out->mutable_buckets())[index] = n;
}

common::Histogram FromProto(const v1::Histogram& h) {
  if (h.sub_bucket_bits() == 0 && h.buckets().empty()) return common::Histogram();
  const std::map<uint32_t, uint64_t> buckets(h.buckets().begin(), h.buckets().end());
  return common::Histogram::FromBuckets(h.sub_bucket_bits(), buckets, h.max_us());
}

void ToProto(const FloodResult& f, v1::FloodResult* out) {
  out->set_name(f.name);
  out->set_attempted(f.attempted);
  out->set_established(f.established);
  out->set_reset(f.reset);
  out->set_refused(f.refused);
  out->set_timed_out(f.timed_out);
  for (const auto& [name, n] : f.errors) (*out->mutable_errors())[name] = n;
  const common::Histogram& h = f.connect_latency_us;
  auto* summary = out->mutable_connect_latency();
  summary->set_count(h.count());
  summary->set_p50_ms(static_cast<double>(h.Quantile(0.50)) / 1000.0);
  summary->set_p90_ms(static_cast<double>(h.Quantile(0.90)) / 1000.0);
  summary->set_p99_ms(static_cast<double>(h.Quantile(0.99)) / 1000.0);
  summary->set_max_ms(static_cast<double>(h.max()) / 1000.0);
  ToProto(h, out->mutable_connect_latency_histogram());
  for (const auto& c : f.connections) {
    auto* rec = out->add_connections();
    rec->set_local(c.local);
    rec->set_remote(c.remote);
    rec->set_outcome(ToProto(c.outcome));
    rec->set_error_name(c.error_name);
    if (c.connect_latency.count() >= 0) ToProto(c.connect_latency, rec->mutable_connect_latency());
    if (c.outcome_after.count() >= 0) ToProto(c.outcome_after, rec->mutable_outcome_after());
    ToProto(c.started_at, rec->mutable_started_at());
  }
  ToProto(f.started_at, out->mutable_started_at());
  out->set_answered(f.answered);
  out->set_launches_late(f.launches_late);
  out->set_launches_dropped(f.launches_dropped);
  ToProto(f.launch_lag_max, out->mutable_launch_lag_max());
  out->set_closed(f.closed);
  for (const FloodSecond& s : f.series) SecondToProto(s, out->add_series());
  for (const HeldConnections& h : f.held) {
    auto* held = out->add_held();
    held->set_local_ip(h.local_ip);
    held->set_remote(h.remote);
    held->mutable_local_ports()->Reserve(static_cast<int>(h.local_ports.size()));
    for (uint16_t port : h.local_ports) held->add_local_ports(port);
  }
  for (uint32_t us : f.reset_after_us) out->add_reset_after_us(us);
  for (uint32_t us : f.timed_out_after_us) out->add_timed_out_after_us(us);
  out->set_outcome_samples_dropped(f.outcome_samples_dropped);
  out->set_threads(f.threads);
  out->set_workers(f.workers);
  out->set_engine(f.engine);
  for (const std::string& e : f.worker_errors) out->add_worker_errors(e);
  for (const std::string& s : f.sources) out->add_sources(s);
  out->set_records_dropped(f.records_dropped);
  out->set_open_peak(f.open_peak);
}

absl::StatusOr<FloodResult> FromProto(const v1::FloodResult& f) {
  FloodResult out;
  out.name = f.name();
  out.attempted = f.attempted();
  out.established = f.established();
  out.reset = f.reset();
  out.refused = f.refused();
  out.timed_out = f.timed_out();
  for (const auto& [name, n] : f.errors()) out.errors[name] = n;
  out.connect_latency_us = FromProto(f.connect_latency_histogram());
  out.connections.reserve(static_cast<size_t>(f.connections_size()));
  for (const v1::ConnectionRecord& rec : f.connections()) {
    ConnectionRecord& c = out.connections.emplace_back();
    c.local = rec.local();
    c.remote = rec.remote();
    absl::StatusOr<Outcome> outcome = OutcomeFromProto(rec.outcome());
    if (!outcome.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("flood ", f.name(), ": connections[",
                                                     out.connections.size() - 1,
                                                     "]: ", outcome.status().message()));
    }
    c.outcome = *outcome;
    c.error_name = rec.error_name();
    c.started_at = FromProto(rec.started_at());
    if (rec.has_connect_latency()) c.connect_latency = FromProto(rec.connect_latency());
    if (rec.has_outcome_after()) c.outcome_after = FromProto(rec.outcome_after());
  }
  out.started_at = FromProto(f.started_at());
  out.answered = f.answered();
  out.launches_late = f.launches_late();
  out.launches_dropped = f.launches_dropped();
  out.launch_lag_max = FromProto(f.launch_lag_max());
  out.closed = f.closed();
  out.series.reserve(static_cast<size_t>(f.series_size()));
  for (const v1::FloodSecond& s : f.series()) out.series.push_back(SecondFromProto(s));
  out.reset_after_us.assign(f.reset_after_us().begin(), f.reset_after_us().end());
  out.timed_out_after_us.assign(f.timed_out_after_us().begin(), f.timed_out_after_us().end());
  out.outcome_samples_dropped = f.outcome_samples_dropped();
  for (const v1::HeldConnections& h : f.held()) {
    HeldConnections& held = out.held.emplace_back();
    held.local_ip = h.local_ip();
    held.remote = h.remote();
    held.local_ports.reserve(static_cast<size_t>(h.local_ports_size()));
    for (uint32_t port : h.local_ports()) {
      if (port > std::numeric_limits<uint16_t>::max()) {
        return absl::InvalidArgumentError(
            absl::StrCat("flood ", f.name(), ": held local port ", port, " is beyond 65535"));
      }
      held.local_ports.push_back(static_cast<uint16_t>(port));
    }
  }
  out.threads = f.threads();
  out.workers = f.workers();
  out.engine = f.engine();
  out.worker_errors.assign(f.worker_errors().begin(), f.worker_errors().end());
  out.sources.assign(f.sources().begin(), f.sources().end());
  out.records_dropped = f.records_dropped();
  out.open_peak = f.open_peak();
  return out;
}

namespace {

// The bounds of common/limits.h on what a request may ask of one flood, each error naming
// floods.NAME.FIELD and the bound. Durations arrive saturated (proto/proto_time.h).
absl::Status CheckFloodBounds(const v1::FloodSpec& f, const std::string& field) {
  auto bad = [&field](absl::string_view name, auto&&... what) {
    return absl::InvalidArgumentError(absl::StrCat(field, name, ": ", what...));
  };
  auto duration = [&](absl::string_view name, const google::protobuf::Duration& d,
                      std::chrono::nanoseconds max) -> absl::Status {
    const std::chrono::nanoseconds v = FromProto(d);
    if (v < std::chrono::nanoseconds(0) || v > max) {
      return bad(name, "must be between 0 and ", max.count(), " ns, got ", d.seconds(), " s ",
                 d.nanos(), " ns");
    }
    return absl::OkStatus();
  };
  auto rate = [&](absl::string_view name, double r) -> absl::Status {
    if (!(r >= 0 && r <= common::kMaxFloodRate)) {
      return bad(name, "must be between 0 and ", common::kMaxFloodRate, " per second, got ", r);
    }
    return absl::OkStatus();
  };
  if (f.name().size() > common::kMaxNameLength) {
    return absl::InvalidArgumentError(absl::StrCat("floods: name longer than ",
                                                   common::kMaxNameLength, " bytes"));
  }
  if (f.connections() > static_cast<uint64_t>(common::kMaxConnections)) {
    return bad("connections", "at most ", common::kMaxConnections, ", got ", f.connections());
  }
  if (f.concurrency() > static_cast<uint64_t>(common::kMaxConcurrency)) {
    return bad("concurrency", "at most ", common::kMaxConcurrency, ", got ", f.concurrency());
  }
  if (f.threads() > static_cast<uint64_t>(common::kMaxThreads)) {
    return bad("threads", "at most ", common::kMaxThreads, ", got ", f.threads());
  }
  if (f.payload().size() > common::kMaxPayloadBytes) {
    return bad("payload", "at most ", common::kMaxPayloadBytes, " bytes, got ", f.payload().size());
  }
  if (f.sources_size() > common::kMaxSourceCount) {
    return bad("sources", "at most ", common::kMaxSourceCount, " addresses, got ",
               f.sources_size());
  }
  if (f.max_records() > common::kMaxRecords) {
    return bad("max_records", "at most ", common::kMaxRecords, ", got ", f.max_records());
  }
  if (f.steps().rates_size() > common::kMaxRateSteps) {
    return bad("steps", "at most ", common::kMaxRateSteps, " steps, got ", f.steps().rates_size());
  }
  RETURN_IF_ERROR(duration("connect_timeout", f.connect_timeout(), common::kMaxConnectTimeout));
  RETURN_IF_ERROR(duration("lifetime", f.lifetime(), common::kMaxConnectTimeout));
  RETURN_IF_ERROR(duration("start_after", f.start_after(), common::kMaxDuration));
  RETURN_IF_ERROR(duration("hold", f.hold(), common::kMaxDuration));
  RETURN_IF_ERROR(duration("duration", f.duration(), common::kMaxDuration));
  RETURN_IF_ERROR(duration("ramp.over", f.ramp().over(), common::kMaxDuration));
  RETURN_IF_ERROR(duration("steps.each", f.steps().each(), common::kMaxDuration));
  RETURN_IF_ERROR(rate("rate", f.rate()));
  RETURN_IF_ERROR(rate("ramp.from", f.ramp().from()));
  RETURN_IF_ERROR(rate("ramp.to", f.ramp().to()));
  for (int i = 0; i < f.steps().rates_size(); ++i) {
    RETURN_IF_ERROR(rate(absl::StrCat("steps[", i, "]"), f.steps().rates(i)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<FloodSpec> FromProto(const v1::FloodSpec& f) {
  const std::string field = absl::StrCat("floods.", f.name(), ".");
  RETURN_IF_ERROR(CheckFloodBounds(f, field));
  FloodSpec spec;
  spec.name = f.name();
  auto target = common::ParseSocketAddress(f.target());
  if (!target.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(field, "target: ", target.status().message()));
  }
  spec.target = *target;
  spec.source = f.source();
  spec.connections = f.connections();
  spec.concurrency = f.concurrency();
  spec.rate = f.rate();
  spec.connect_timeout = FromProto(f.connect_timeout());
  spec.start_after = FromProto(f.start_after());
  spec.hold = FromProto(f.hold());
  spec.payload = f.payload();
  spec.duration = FromProto(f.duration());

  const int profiles = (f.rate() > 0 ? 1 : 0) + (f.has_ramp() ? 1 : 0) + (f.has_steps() ? 1 : 0);
  if (profiles > 1) {
    return absl::InvalidArgumentError(absl::StrCat(field, "rate: give at most one of rate (",
                                                   f.rate(), "), ramp and steps, got ", profiles));
  }
  if (f.has_ramp()) {
    spec.profile.kind = RateProfile::Kind::kRamp;
    spec.profile.from = f.ramp().from();
    spec.profile.to = f.ramp().to();
    spec.profile.over = FromProto(f.ramp().over());
  } else if (f.has_steps()) {
    spec.profile.kind = RateProfile::Kind::kSteps;
    spec.profile.steps.assign(f.steps().rates().begin(), f.steps().rates().end());
    spec.profile.each = FromProto(f.steps().each());
  } else {
    spec.profile.kind = RateProfile::Kind::kConstant;
    spec.profile.rate = f.rate();
  }
  spec.lifetime = FromProto(f.lifetime());
  spec.close = FromProto(f.close());
  spec.threads = f.threads();
  spec.sources.assign(f.sources().begin(), f.sources().end());
  spec.keep_records = f.keep_records();
  spec.max_records = f.max_records();
  return spec;
}

}  // namespace synq::agent
