#include "controller/result/flood_series.h"

#include <algorithm>
#include <cstdint>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/histogram.h"
#include "controller/scenario/rate_profile.h"
#include "proto/proto_time.h"

namespace synq::controller::result {
namespace {

namespace av1 = ::synq::agent::v1;
namespace rv1 = ::synq::result::v1;

uint32_t Count(uint64_t n) { return static_cast<uint32_t>(std::min<uint64_t>(n, UINT32_MAX)); }
double Ms(std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1e6; }

}  // namespace

bool HasSustainedFields(const av1::FloodResult& flood) { return flood.threads() > 0; }

rv1::FloodSecond BuildSecond(const av1::FloodSecond& in, const FloodDef* def) {
  rv1::FloodSecond out;
  out.set_second(in.second());
  out.set_launched(Count(in.launched()));
  out.set_established(Count(in.established()));
  out.set_reset(Count(in.reset()));
  out.set_refused(Count(in.refused()));
  out.set_timed_out(Count(in.timed_out()));
  out.set_errors(Count(in.errors()));
  out.set_late(Count(in.late()));
  out.set_dropped(Count(in.dropped()));
  out.set_answered(Count(in.answered()));
  const av1::Histogram& h = in.connect_latency();
  std::map<uint32_t, uint64_t> buckets(h.buckets().begin(), h.buckets().end());
  const common::Histogram hist = common::Histogram::FromBuckets(
      h.sub_bucket_bits() == 0 ? common::Histogram::kDefaultSubBucketBits : h.sub_bucket_bits(),
      buckets, h.max_us());
  if (hist.count() > 0) {
    rv1::LatencySummary* lat = out.mutable_connect_latency_ms();
    lat->set_p50(static_cast<double>(hist.Quantile(0.50)) / 1000.0);
    lat->set_p90(static_cast<double>(hist.Quantile(0.90)) / 1000.0);
    lat->set_p99(static_cast<double>(hist.Quantile(0.99)) / 1000.0);
    lat->set_max(static_cast<double>(hist.max()) / 1000.0);
    lat->set_count(Count(hist.count()));
  }
  if (def != nullptr) out.set_rate(ScheduledRateInSecond(*def, in.second()));
  return out;
}

void FillSustainedFlood(const av1::FloodResult& f, const FloodDef* def, rv1::Flood* out,
                        std::vector<std::string>* not_observed) {
  if (def != nullptr) {
    out->set_close(CloseModeName(def->close));
    out->set_lifetime_ms(Ms(def->lifetime));
    out->set_duration_ms(Ms(def->duration));
    out->set_rate_profile(DescribeRateProfile(*def));
  }
  if (!HasSustainedFields(f)) {
    // An agent before 0.4: it did not measure the schedule, the threads or the series.
    not_observed->push_back(
        absl::StrCat("floods.", f.name(),
                     ".series: the agent did not report launches, threads or a per-second series "
                     "(an agent before 0.4)"));
    return;
  }
  out->set_answered(Count(f.answered()));
  out->set_launches_late(Count(f.launches_late()));
  out->set_launches_dropped(Count(f.launches_dropped()));
  out->set_launch_lag_max_ms(Ms(proto::FromProto(f.launch_lag_max())));
  out->set_closed(Count(f.closed()));
  out->set_threads(f.threads());
  out->set_workers(std::max<uint32_t>(1, f.workers()));
  for (const auto& e : f.worker_errors()) out->add_worker_errors(e);
  for (const auto& s : f.sources()) out->add_sources(s);
  out->set_records_dropped(Count(f.records_dropped()));
  out->set_open_peak(Count(f.open_peak()));
  for (const av1::FloodSecond& s : f.series()) {
    const rv1::FloodSecond& second = *out->add_series() = BuildSecond(s, def);
    const uint64_t failed =
        uint64_t{second.timed_out()} + second.reset() + second.refused() + second.errors();
    if (failed > 0 &&
        (!out->has_first_failure_second() || second.second() < out->first_failure_second())) {
      out->set_first_failure_second(second.second());
      out->set_first_failure_rate(second.rate());
    }
  }
}

}  // namespace synq::controller::result
