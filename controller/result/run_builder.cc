#include "controller/result/run_builder.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "controller/result/fate_join.h"
#include "controller/result/flood_series.h"
#include "controller/scenario/sweep_value_proto.h"
#include "proto/proto_time.h"

namespace synq::controller::result {
namespace {

namespace av1 = ::synq::agent::v1;
namespace rv1 = ::synq::result::v1;
using std::chrono::nanoseconds;
using Clock = std::chrono::system_clock;

double Ms(nanoseconds d) { return static_cast<double>(d.count()) / 1e6; }

// Counts fit 32 bits in any run (4e9 connections would take a day at 50,000/s); clamp rather
// than wrap if one ever does not.
uint32_t Count(uint64_t n) { return static_cast<uint32_t>(std::min<uint64_t>(n, UINT32_MAX)); }
int32_t Int(int64_t n) {
  return static_cast<int32_t>(std::clamp<int64_t>(n, INT32_MIN, INT32_MAX));
}

const char* OutcomeName(av1::Outcome outcome) {
  switch (outcome) {
    case av1::OUTCOME_ESTABLISHED:
      return "established";
    case av1::OUTCOME_RESET:
      return "reset";
    case av1::OUTCOME_REFUSED:
      return "refused";
    case av1::OUTCOME_TIMED_OUT:
      return "timed_out";
    default:
      return "error";
  }
}

rv1::AcceptMode AcceptModeOf(common::AcceptMode mode) {
  switch (mode) {
    case common::AcceptMode::kNever:
      return rv1::ACCEPT_MODE_NEVER;
    case common::AcceptMode::kPaced:
      return rv1::ACCEPT_MODE_PACED;
    case common::AcceptMode::kImmediate:
      return rv1::ACCEPT_MODE_IMMEDIATE;
  }
  return rv1::ACCEPT_MODE_UNSPECIFIED;
}

const char* BackendName(av1::ShapingBackend backend) {
  switch (backend) {
    case av1::SHAPING_BACKEND_NETEM:
      return "netem";
    case av1::SHAPING_BACKEND_NFQUEUE:
      return "nfqueue";
    default:
      return "auto";
  }
}

void SetPacketCounts(const av1::PacketCounts& in, rv1::PacketCounts* out) {
  out->set_syn(Count(in.syn()));
  out->set_syn_retransmit(Count(in.syn_retransmit()));
  out->set_synack(Count(in.synack()));
  out->set_synack_retransmit(Count(in.synack_retransmit()));
  out->set_pure_ack(Count(in.pure_ack()));
  out->set_rst(Count(in.rst()));
  out->set_fin(Count(in.fin()));
  out->set_data(Count(in.data()));
  out->set_total(Count(in.total()));
}

void BuildHost(const HostReplies& h, const RunPlan& plan, rv1::Host* out) {
  out->set_kernel(h.info.kernel_release());
  out->set_hostname(h.info.hostname());
  out->set_agent(h.agent);
  out->set_address(h.address);
  for (const auto& s : h.info.settings()) (*out->mutable_settings())[s.key()] = Int(s.value());
  for (const auto& [key, value] : h.applied_settings) (*out->mutable_settings())[key] = Int(value);
  if (auto it = plan.scenario.settings.find(h.name); it != plan.scenario.settings.end()) {
    for (const auto& [key, value] : it->second) out->add_changed_settings(key);
  }
  for (const auto& a : h.applied_shaping) {
    rv1::Shaping* s = out->add_shaping();
    s->set_interface(a.interface());
    s->set_backend(BackendName(a.backend()));
    s->set_delay_ms(Ms(proto::FromProto(a.delay())));
    s->set_jitter_ms(Ms(proto::FromProto(a.jitter())));
    s->set_loss_percent(a.loss_percent());
    s->set_rate_bits_per_second(static_cast<double>(a.rate_bits_per_second()));
    s->set_destination(a.destination());
  }
  if (h.clock_offset) out->set_clock_offset_ms(Ms(*h.clock_offset));
  if (!h.error.empty()) out->set_error(h.error);
  if (!h.collected) {
    out->set_counters_unavailable(h.error.empty()
                                      ? "the run stopped before this host's final snapshot"
                                      : absl::StrCat("the host failed: ", h.error));
    return;
  }
  const av1::CollectResultsResponse& c = *h.collected;
  // Every counter the host has, zeros included: a counter that did not move reads 0.
  for (const auto& counter : c.counter_deltas()) {
    (*out->mutable_counters())[counter.name()] = static_cast<double>(counter.value());
  }
  for (const auto& [name, n] : c.drop_events()) {
    (*out->mutable_drop_events())[name] = static_cast<double>(n);
  }
  out->set_drop_events_unavailable(c.drop_events_unavailable());
  if (c.has_capture()) {
    const av1::CaptureResult& capture = c.capture();
    rv1::Packets* p = out->mutable_packets();
    p->set_interface(capture.interface());
    if (!capture.error().empty()) {
      p->set_error(capture.error());
    } else {
      SetPacketCounts(capture.to_server(), p->mutable_to_server());
      SetPacketCounts(capture.from_server(), p->mutable_from_server());
      p->set_dropped_by_kernel(Count(capture.dropped_by_kernel()));
      if (!h.pcap_file.empty()) {
        p->set_file(h.pcap_file);
      } else {
        p->set_agent_file(capture.agent_file());
      }
    }
  }
}

const ListenerDef* FindListener(const Scenario& s, const std::string& name) {
  for (const auto& l : s.listeners) {
    if (l.name == name) return &l;
  }
  return nullptr;
}

const FloodDef* FindFlood(const Scenario& s, const std::string& name) {
  for (const auto& f : s.floods) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

}  // namespace

std::string ResolvedTarget::ToString() const {
  return absl::StrContains(ip, ':') ? absl::StrCat("[", ip, "]:", port)
                                    : absl::StrCat(ip, ":", port);
}

void SetParamValue(const SweepValue& value, google::protobuf::Value* out) {
  *out = SweepValueToProto(value);
}

rv1::Run BuildRun(const RunInputs& in) {
  const Scenario& s = in.plan->scenario;
  rv1::Run run;
  run.set_index(in.index);
  run.set_run_id(in.run_id);
  run.set_duration_ms(Ms(in.duration));
  for (const auto& [path, value] : in.plan->params) {
    SetParamValue(value, &(*run.mutable_params())[path]);
  }
  for (const auto& e : in.errors) run.add_errors(e);
  for (const auto& n : in.not_observed) run.add_not_observed(n);

  // Hosts, listeners and the server view for the fate join.
  FateJoin join;
  std::map<std::string, bool> host_collected;
  for (const HostReplies& h : in.hosts) {
    BuildHost(h, *in.plan, &(*run.mutable_hosts())[h.name]);
    host_collected[h.name] = h.collected.has_value();
    if (!h.collected) continue;
    join.AddServerSockets(*h.collected);
    for (const auto& l : h.collected->listeners()) {
      rv1::Listener& out = (*run.mutable_listeners())[l.name()];
      out.set_host(h.name);
      out.set_address(l.address());
      out.set_ip(l.ip());
      out.set_port(l.port());
      out.set_backlog(l.backlog());
      if (l.backlog_effective() >= 0) {
        out.set_backlog_effective(Int(l.backlog_effective()));
      } else {
        run.add_not_observed(absl::StrCat("listeners.", l.name(),
                                          ".backlog_effective: sock_diag could not read it"));
      }
      out.set_accepted(Count(l.accepted()));
      out.set_accept_queue_peak(Int(l.accept_queue_peak()));
      if (const ListenerDef* def = FindListener(s, l.name()); def != nullptr) {
        out.set_accept(AcceptModeOf(def->accept));
        out.set_accept_interval_ms(Ms(def->accept_interval));
        out.set_accept_rate(def->accept_rate);
      }
      if (l.observed()) {
        // Another process owns it: what it passed to listen() and how it accepts are unknown.
        out.set_observed(true);
        out.set_owner(l.owner());
        run.add_not_observed(absl::StrCat("listeners.", l.name(),
                                          ".backlog: set by the process that owns the listener; "
                                          "backlog_effective is what the kernel applied"));
      }
    }
  }

  // Floods: counts, latency, fates, start lateness on the controller's clock.
  std::vector<double> lateness_ms;
  size_t starts_missing = 0;  // floods that reported a result without a measured start
  std::vector<std::string> sustained_notes;
  for (const HostReplies& h : in.hosts) {
    if (!h.collected) continue;
    for (const auto& f : h.collected->floods()) {
      rv1::Flood& out = (*run.mutable_floods())[f.name()];
      out.set_host(h.name);
      out.set_attempted(Count(f.attempted()));
      out.set_established(Count(f.established()));
      out.set_reset(Count(f.reset()));
      out.set_refused(Count(f.refused()));
      out.set_timed_out(Count(f.timed_out()));
      for (const auto& [name, n] : f.errors()) (*out.mutable_errors())[name] = Count(n);
      if (f.connect_latency().count() > 0) {
        rv1::LatencySummary* lat = out.mutable_connect_latency_ms();
        lat->set_p50(f.connect_latency().p50_ms());
        lat->set_p90(f.connect_latency().p90_ms());
        lat->set_p99(f.connect_latency().p99_ms());
        lat->set_max(f.connect_latency().max_ms());
        lat->set_count(Count(f.connect_latency().count()));
      } else {
        run.add_not_observed(
            absl::StrCat("floods.", f.name(), ".connect_latency_ms: no connect completed"));
      }
      rv1::Histogram* hist = out.mutable_connect_latency_histogram();
      hist->set_sub_bucket_bits(f.connect_latency_histogram().sub_bucket_bits());
      for (const auto& [bucket, n] : f.connect_latency_histogram().buckets()) {
        (*hist->mutable_buckets())[bucket] = Count(n);
      }
      out.set_engine(f.engine());  // empty from an agent before 0.6
      const FloodDef* def = FindFlood(s, f.name());
      if (def != nullptr) {
        out.set_connections_requested(Count(static_cast<uint64_t>(def->connections)));
        out.set_concurrency(Count(static_cast<uint64_t>(def->concurrency)));
        out.set_rate(def->rate);
        out.set_connect_timeout_ms(Ms(def->connect_timeout));
      }
      bool server_observed = false;
      if (auto t = in.targets.find(f.name()); t != in.targets.end()) {
        out.set_target(t->second.ToString());
        out.set_target_ip(t->second.ip);
        out.set_target_port(t->second.port);
        out.set_listener(t->second.listener);
        if (const ListenerDef* l = FindListener(s, t->second.listener); l != nullptr) {
          server_observed = host_collected[l->host];
        } else if (const ObserveDef* o = s.FindObserved(t->second.listener); o != nullptr) {
          server_observed = host_collected[o->host];
        }
      }
      out.set_server_observed(server_observed);
      rv1::Fates* fates = out.mutable_fates();
      if (server_observed) {
        // Joined fates are counts only where the join could be made; zeros are then measured.
        fates->set_accepted(0);
        fates->set_queued(0);
        fates->set_syn_recv(0);
        fates->set_unknown_to_server(0);
      } else {
        run.add_not_observed(absl::StrCat("floods.", f.name(),
                                          ".fates: the server side of the target was not "
                                          "observed (neither a synq listener nor an observe: "
                                          "entry, or its host returned no snapshot)"));
      }
      FillSustainedFlood(f, def, &out, &sustained_notes);
      // A 0.4 agent: fates from counters and held connections, records only for the rows.
      const bool held_join = HasSustainedFields(f);
      if (held_join) join.CountHeld(f, server_observed, fates);
      // When resets and timeouts were decided: the agent's bounded samples (0.4), else the
      // per-connection records of an older agent.
      for (uint32_t us : f.reset_after_us()) out.add_reset_after_ms(us / 1000.0);
      for (uint32_t us : f.timed_out_after_us()) out.add_timed_out_after_ms(us / 1000.0);
      if (f.outcome_samples_dropped() > 0) {
        run.add_not_observed(absl::StrCat(
            "floods.", f.name(), ".reset_after_ms/timed_out_after_ms: ",
            f.outcome_samples_dropped(),
            " decision times beyond the agent's first 10000 per engine were not kept"));
      }
      const bool outcome_samples = f.reset_after_us_size() > 0 ||
                                   f.timed_out_after_us_size() > 0 ||
                                   f.outcome_samples_dropped() > 0;
      for (const auto& c : f.connections()) {
        if (!outcome_samples && c.has_outcome_after()) {
          const double at = Ms(proto::FromProto(c.outcome_after()));
          if (c.outcome() == av1::OUTCOME_RESET) out.add_reset_after_ms(at);
          if (c.outcome() == av1::OUTCOME_TIMED_OUT) out.add_timed_out_after_ms(at);
        }
        const Fate fate = join.Of(c, server_observed);
        if (!held_join) CountFate(fate, fates);
        if (in.connections) {
          rv1::Connection* row = out.add_connections();
          row->set_local(c.local());
          row->set_remote(c.remote());
          row->set_outcome(OutcomeName(c.outcome()));
          row->set_fate(FateName(fate));
          row->set_error(c.error_name());
          if (c.has_connect_latency()) {
            row->set_connect_ms(Ms(proto::FromProto(c.connect_latency())));
          }
          if (c.has_outcome_after()) row->set_outcome_ms(Ms(proto::FromProto(c.outcome_after())));
        }
      }
      if (in.start_at && h.clock_offset && def != nullptr && f.has_started_at()) {
        const auto actual = proto::FromProto(f.started_at()) -
                            std::chrono::duration_cast<Clock::duration>(*h.clock_offset);
        const auto scheduled =
            *in.start_at + std::chrono::duration_cast<Clock::duration>(def->start_after);
        const double late = Ms(actual - scheduled);
        out.set_start_lateness_ms(late);
        lateness_ms.push_back(late);
      } else {
        ++starts_missing;
        run.add_not_observed(absl::StrCat("floods.", f.name(),
                                          ".start_lateness_ms: start time or clock offset of "
                                          "host '",
                                          h.name, "' not measured"));
      }
    }
  }
  for (const auto& note : sustained_notes) run.add_not_observed(note);
  // A flood the scenario has but no agent reported (its host failed): say so.
  for (const auto& f : s.floods) {
    if (!run.floods().contains(f.name)) {
      ++starts_missing;
      run.add_not_observed(
          absl::StrCat("floods.", f.name, ": host '", f.host, "' returned no result"));
    }
  }
  if (!lateness_ms.empty() && starts_missing > 0) {
    // A skew over the floods that did start would hide the one that did not: not measured.
    // So would the latest start.
    for (const char* field : {"start_skew_ms", "start_lateness_ms"}) {
      run.add_not_observed(absl::StrCat(field, ": the start of ", starts_missing, " of ",
                                        starts_missing + lateness_ms.size(),
                                        " floods was not measured"));
    }
  } else if (!lateness_ms.empty()) {
    const auto [lo, hi] = std::minmax_element(lateness_ms.begin(), lateness_ms.end());
    run.set_start_skew_ms(*hi - *lo);
    run.set_start_lateness_ms(*hi);
  } else {
    run.add_not_observed("start_skew_ms: no flood start was measured");
    run.add_not_observed("start_lateness_ms: no flood start was measured");
  }

  // Samples on the controller's clock, from the scheduled start (or the first sample).
  struct Timed {
    Clock::time_point at;
    const HostReplies* host;
    const av1::Sample* sample;
  };
  std::vector<Timed> timed;
  for (const HostReplies& h : in.hosts) {
    const nanoseconds offset = h.clock_offset.value_or(nanoseconds(0));
    for (const auto& sample : h.samples) {
      timed.push_back(
          {proto::FromProto(sample.at()) - std::chrono::duration_cast<Clock::duration>(offset), &h,
           &sample});
    }
  }
  std::stable_sort(timed.begin(), timed.end(),
                   [](const Timed& a, const Timed& b) { return a.at < b.at; });
  Clock::time_point t0{};
  if (in.start_at) {
    t0 = *in.start_at;
  } else if (!timed.empty()) {
    t0 = timed.front().at;
  }
  for (const Timed& t : timed) {
    rv1::Sample* out = run.add_samples();
    out->set_t_ms(Ms(t.at - t0));
    out->set_host(t.host->name);
    for (const auto& l : t.sample->listeners()) {
      rv1::ListenerSample& ls = (*out->mutable_listeners())[l.name()];
      ls.set_accept_queue(Int(l.accept_queue()));
      ls.set_accept_queue_max(Int(l.accept_queue_max()));
      ls.set_syn_recv(Int(l.syn_recv()));
    }
    for (const auto& c : t.sample->counter_deltas()) {
      (*out->mutable_counters())[c.name()] = static_cast<double>(c.value());
    }
  }
  return run;
}

}  // namespace synq::controller::result
