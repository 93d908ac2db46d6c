#include "agent/flood/flood_proto.h"

#include "absl/strings/str_cat.h"
#include "proto/proto_time.h"

namespace synq::agent {

namespace v1 = ::synq::agent::v1;
using proto::FromProto;
using proto::ToProto;

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
  auto* hist = out->mutable_connect_latency_histogram();
  hist->set_sub_bucket_bits(h.sub_bucket_bits());
  hist->set_count(h.count());
  hist->set_max_us(h.max());
  for (const auto& [index, n] : h.buckets()) (*hist->mutable_buckets())[index] = n;
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
}

absl::StatusOr<FloodSpec> FromProto(const v1::FloodSpec& f) {
  FloodSpec spec;
  spec.name = f.name();
  auto target = common::ParseSocketAddress(f.target());
  if (!target.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("floods.", f.name(), ".target: ", target.status().message()));
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
  return spec;
}

}  // namespace synq::agent
