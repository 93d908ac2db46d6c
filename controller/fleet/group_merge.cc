#include "controller/fleet/group_merge.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/histogram.h"

namespace synq::controller::fleet {
namespace {

namespace rv1 = ::synq::result::v1;

// Fates: the plain counts add; the joined ones add only when every member has them.
void MergeFates(const std::vector<const rv1::Fates*>& parts, rv1::Fates* out) {
  bool joined = !parts.empty();
  for (const rv1::Fates* f : parts) {
    joined = joined && f->has_accepted() && f->has_queued() && f->has_syn_recv() &&
             f->has_unknown_to_server();
    out->set_reset(out->reset() + f->reset());
    out->set_refused(out->refused() + f->refused());
    out->set_timed_out(out->timed_out() + f->timed_out());
    out->set_error(out->error() + f->error());
    out->set_established_unjoined(out->established_unjoined() + f->established_unjoined());
  }
  if (!joined) return;
  uint32_t accepted = 0, queued = 0, syn_recv = 0, unknown = 0;
  for (const rv1::Fates* f : parts) {
    accepted += f->accepted();
    queued += f->queued();
    syn_recv += f->syn_recv();
    unknown += f->unknown_to_server();
  }
  out->set_accepted(accepted);
  out->set_queued(queued);
  out->set_syn_recv(syn_recv);
  out->set_unknown_to_server(unknown);
}

absl::Status MergeFlood(const std::string& key, const std::string& group,
                        const std::vector<std::string>& member_keys, rv1::Run* run) {
  auto& floods = *run->mutable_floods();
  std::vector<const rv1::Flood*> parts;
  std::vector<std::string> missing;
  for (const std::string& m : member_keys) {
    auto it = floods.find(m);
    if (it == floods.end()) {
      missing.push_back(m);
      continue;
    }
    it->second.set_group(group);
    parts.push_back(&it->second);
  }
  rv1::Flood merged;
  merged.set_group(group);
  for (const std::string& m : member_keys) {
    if (floods.contains(m)) merged.add_members(m);
  }
  if (!missing.empty()) {
    run->add_not_observed(absl::StrCat("floods.", key, ": merged without ",
                                       absl::StrJoin(missing, ", "),
                                       " (no result from their host)"));
  }
  if (parts.empty()) {
    floods[key] = std::move(merged);
    return absl::OkStatus();
  }
  const rv1::Flood& first = *parts.front();
  // What the scenario asked of each member, and where it went: the same for every member.
  merged.set_host(group);
  merged.set_concurrency(first.concurrency());
  merged.set_rate(first.rate());
  merged.set_connect_timeout_ms(first.connect_timeout_ms());
  merged.set_close(first.close());
  merged.set_lifetime_ms(first.lifetime_ms());
  merged.set_duration_ms(first.duration_ms());
  merged.set_rate_profile(first.rate_profile());
  bool same_target = true;
  bool server_observed = true;
  bool lateness_complete = true;  // the group's lateness is its latest member's: all must have one
  std::set<std::string> engines;
  std::set<std::string> sources;
  std::map<uint32_t, rv1::FloodSecond> seconds;
  common::Histogram histogram(first.connect_latency_histogram().sub_bucket_bits());
  bool histogram_ok = true;
  double latency_max = 0;
  std::vector<const rv1::Fates*> fates;
  for (const rv1::Flood* f : parts) {
    same_target = same_target && f->target() == first.target();
    server_observed = server_observed && f->server_observed();
    merged.set_attempted(merged.attempted() + f->attempted());
    merged.set_established(merged.established() + f->established());
    merged.set_reset(merged.reset() + f->reset());
    merged.set_refused(merged.refused() + f->refused());
    merged.set_timed_out(merged.timed_out() + f->timed_out());
    merged.set_answered(merged.answered() + f->answered());
    merged.set_closed(merged.closed() + f->closed());
    merged.set_launches_late(merged.launches_late() + f->launches_late());
    merged.set_launches_dropped(merged.launches_dropped() + f->launches_dropped());
    merged.set_launch_lag_max_ms(std::max(merged.launch_lag_max_ms(), f->launch_lag_max_ms()));
    merged.set_connections_requested(merged.connections_requested() + f->connections_requested());
    merged.set_threads(merged.threads() + f->threads());
    merged.set_workers(merged.workers() + f->workers());
    merged.set_records_dropped(merged.records_dropped() + f->records_dropped());
    merged.set_open_peak(merged.open_peak() + f->open_peak());
    for (const auto& [name, n] : f->errors()) (*merged.mutable_errors())[name] += n;
    for (double ms : f->reset_after_ms()) merged.add_reset_after_ms(ms);
    for (double ms : f->timed_out_after_ms()) merged.add_timed_out_after_ms(ms);
    for (const auto& c : f->connections()) *merged.add_connections() = c;
    for (const auto& e : f->worker_errors()) merged.add_worker_errors(e);
    for (const auto& s : f->sources()) sources.insert(s);
    if (!f->engine().empty()) engines.insert(f->engine());
    if (f->has_start_lateness_ms()) {
      merged.set_start_lateness_ms(std::max(merged.start_lateness_ms(), f->start_lateness_ms()));
    } else {
      lateness_complete = false;
    }
    for (const auto& s : f->series()) {
      rv1::FloodSecond& out = seconds[s.second()];
      out.set_second(s.second());
      out.set_launched(out.launched() + s.launched());
      out.set_established(out.established() + s.established());
      out.set_reset(out.reset() + s.reset());
      out.set_refused(out.refused() + s.refused());
      out.set_timed_out(out.timed_out() + s.timed_out());
      out.set_errors(out.errors() + s.errors());
      out.set_late(out.late() + s.late());
      out.set_dropped(out.dropped() + s.dropped());
      out.set_answered(out.answered() + s.answered());
      out.set_rate(out.rate() + s.rate());  // the group's scheduled rate: the members' sum
      // A second's latency summary has no histogram behind it to merge: left absent.
    }
    if (f->has_connect_latency_ms()) {
      latency_max = std::max(latency_max, f->connect_latency_ms().max());
    }
    std::map<uint32_t, uint64_t> buckets(f->connect_latency_histogram().buckets().begin(),
                                         f->connect_latency_histogram().buckets().end());
    // The member's measured max caps its quantiles as it did on the agent (microseconds).
    const uint64_t max_us =
        f->has_connect_latency_ms()
            ? static_cast<uint64_t>(std::llround(f->connect_latency_ms().max() * 1000.0))
            : 0;
    const common::Histogram part = common::Histogram::FromBuckets(
        f->connect_latency_histogram().sub_bucket_bits(), buckets, max_us);
    histogram_ok = histogram_ok && histogram.Merge(part);
    fates.push_back(&f->fates());
  }
  if (same_target) {
    merged.set_target(first.target());
    merged.set_target_ip(first.target_ip());
    merged.set_target_port(first.target_port());
    merged.set_listener(first.listener());
  }
  merged.set_server_observed(server_observed);
  if (!lateness_complete && merged.has_start_lateness_ms()) {
    merged.clear_start_lateness_ms();
    run->add_not_observed(
        absl::StrCat("floods.", key, ".start_lateness_ms: a member's start was not measured"));
  }
  merged.set_engine(absl::StrJoin(engines, "+"));
  for (const auto& s : sources) merged.add_sources(s);
  for (auto& [second, s] : seconds) *merged.add_series() = std::move(s);
  MergeFates(fates, merged.mutable_fates());
  absl::Status status = absl::OkStatus();
  if (!histogram_ok) {
    status = absl::FailedPreconditionError(
        absl::StrCat("floods.", key, ": member latency histograms use different resolutions"));
    run->add_not_observed(absl::StrCat("floods.", key,
                                       ".connect_latency_ms: member histograms use different "
                                       "resolutions and cannot be merged exactly"));
  } else {
    rv1::Histogram* h = merged.mutable_connect_latency_histogram();
    h->set_sub_bucket_bits(histogram.sub_bucket_bits());
    for (const auto& [bucket, n] : histogram.buckets()) {
      (*h->mutable_buckets())[bucket] = static_cast<uint32_t>(n);
    }
    if (histogram.count() > 0) {
      // The same reading of a histogram as the agents' (bucket upper edge), so a group of one
      // reports what its member does; max is measured, not bucketed.
      rv1::LatencySummary* lat = merged.mutable_connect_latency_ms();
      lat->set_p50(static_cast<double>(histogram.Quantile(0.50)) / 1000.0);
      lat->set_p90(static_cast<double>(histogram.Quantile(0.90)) / 1000.0);
      lat->set_p99(static_cast<double>(histogram.Quantile(0.99)) / 1000.0);
      lat->set_max(latency_max);
      lat->set_count(static_cast<uint32_t>(histogram.count()));
    } else {
      run->add_not_observed(
          absl::StrCat("floods.", key, ".connect_latency_ms: no connect completed"));
    }
  }
  floods[key] = std::move(merged);
  return status;
}

void MergeListener(const std::string& key, const std::string& group,
                   const std::vector<std::string>& member_keys, rv1::Run* run) {
  auto& listeners = *run->mutable_listeners();
  rv1::Listener merged;
  merged.set_group(group);
  merged.set_host(group);
  bool any = false;
  for (const std::string& m : member_keys) {
    auto it = listeners.find(m);
    if (it == listeners.end()) continue;
    rv1::Listener& l = it->second;
    l.set_group(group);
    if (!any) {
      merged.set_port(l.port());
      merged.set_backlog(l.backlog());
      merged.set_accept(l.accept());
      merged.set_accept_interval_ms(l.accept_interval_ms());
      merged.set_accept_rate(l.accept_rate());
      merged.set_observed(l.observed());
      merged.set_accept_queue_peak(l.accept_queue_peak());
    }
    any = true;
    merged.set_accepted(merged.accepted() + l.accepted());
    merged.set_accept_queue_peak(std::max(merged.accept_queue_peak(), l.accept_queue_peak()));
  }
  if (any) listeners[key] = std::move(merged);
}

}  // namespace

absl::Status MergeGroupRows(const GroupPlan& plan, rv1::Run* run) {
  for (auto& [name, host] : *run->mutable_hosts()) {
    auto it = plan.hosts.find(name);
    if (it == plan.hosts.end()) continue;
    host.set_group(it->second.group);
    host.set_endpoint(it->second.endpoint);
  }
  absl::Status status = absl::OkStatus();
  for (const auto& [key, members] : plan.floods) {
    const std::string& group = plan.row_group.at("floods." + key);
    absl::Status s = MergeFlood(key, group, members, run);
    if (status.ok()) status = s;
  }
  for (const auto& [key, members] : plan.listeners) {
    MergeListener(key, plan.row_group.at("listeners." + key), members, run);
  }
  return status;
}

}  // namespace synq::controller::fleet
