#include "controller/orchestrator.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "proto/proto_enums.h"
#include "proto/proto_time.h"
#include "spdlog/spdlog.h"

namespace synq::controller {
namespace {

using json = nlohmann::json;
using std::chrono::nanoseconds;
using Clock = std::chrono::system_clock;

// Runs fn(i) for i in [0, n) on up to 64 threads at once; fan-out to hundreds of agents.
void ParallelFor(size_t n, const std::function<void(size_t)>& fn) {
  constexpr size_t kWidth = 64;
  for (size_t base = 0; base < n; base += kWidth) {
    std::vector<std::thread> threads;
    for (size_t i = base; i < std::min(n, base + kWidth); ++i) threads.emplace_back(fn, i);
    for (auto& t : threads) t.join();
  }
}

double Ms(nanoseconds d) { return static_cast<double>(d.count()) / 1e6; }

const char* OutcomeName(v1::Outcome outcome) {
  switch (outcome) {
    case v1::OUTCOME_ESTABLISHED:
      return "established";
    case v1::OUTCOME_RESET:
      return "reset";
    case v1::OUTCOME_REFUSED:
      return "refused";
    case v1::OUTCOME_TIMED_OUT:
      return "timed_out";
    case v1::OUTCOME_ERROR:
      return "error";
    default:
      return "unspecified";
  }
}

bool HasCapability(const v1::HostInfo& info, v1::Capability c) {
  return std::find(info.capabilities().begin(), info.capabilities().end(), c) !=
         info.capabilities().end();
}

std::string MissingReason(const v1::HostInfo& info, v1::Capability c) {
  for (const auto& m : info.missing_capabilities()) {
    if (m.capability() == c) return m.reason();
  }
  return "not reported by the agent";
}

// Worst case for a flood to finish: every connect waits its full timeout.
nanoseconds FloodBudget(const FloodDef& f) {
  const int64_t waves = (f.connections + f.concurrency - 1) / std::max<int64_t>(1, f.concurrency);
  nanoseconds pacing{0};
  if (f.rate > 0) pacing = nanoseconds(static_cast<int64_t>(1e9 * f.connections / f.rate));
  return f.start_after + pacing + waves * f.connect_timeout + f.hold;
}

json Summary(const v1::LatencySummary& s) {
  return {{"p50", s.p50_ms()},
          {"p90", s.p90_ms()},
          {"p99", s.p99_ms()},
          {"max", s.max_ms()},
          {"count", s.count()}};
}

}  // namespace

json SweepValueJson(const SweepValue& value) {
  return std::visit([](const auto& v) { return json(v); }, value.value());
}

std::string ConnectionFate(
    const v1::ConnectionRecord& attempt,
    const std::map<std::pair<std::string, std::string>, const v1::ServerSocket*>& server_by_tuple) {
  if (attempt.outcome() != v1::OUTCOME_ESTABLISHED) {
    if (attempt.outcome() == v1::OUTCOME_ERROR) return "error";
    return OutcomeName(attempt.outcome());
  }
  // The server's local/remote are the client's remote/local.
  auto it = server_by_tuple.find({attempt.remote(), attempt.local()});
  if (it == server_by_tuple.end()) return "unknown_to_server";
  const v1::ServerSocket& s = *it->second;
  if (s.state() == "SYN_RECV" || s.state() == "NEW_SYN_RECV") return "syn_recv";
  if (s.accepted()) return "accepted";
  return "queued";
}

absl::StatusOr<nanoseconds> MeasureClockOffset(AgentClient& client, int rounds, nanoseconds* rtt) {
  nanoseconds best_rtt = nanoseconds::max();
  nanoseconds best_offset{0};
  for (int i = 0; i < rounds; ++i) {
    const auto t0 = Clock::now();
    auto clock = client.GetClock();
    const auto t1 = Clock::now();
    if (!clock.ok()) return clock.status();
    const nanoseconds round_trip = t1 - t0;
    if (round_trip < best_rtt) {
      best_rtt = round_trip;
      const auto mid = t0 + (t1 - t0) / 2;
      best_offset = proto::FromProto(clock->now()) - mid;
    }
  }
  if (rtt != nullptr) *rtt = best_rtt;
  return best_offset;
}

json Orchestrator::CaptureJson(const v1::CaptureResult& capture, int index,
                               const std::string& host) const {
  auto counts = [](const v1::PacketCounts& c) {
    return json{{"syn", c.syn()},           {"syn_retransmit", c.syn_retransmit()},
                {"synack", c.synack()},     {"synack_retransmit", c.synack_retransmit()},
                {"pure_ack", c.pure_ack()}, {"rst", c.rst()},
                {"fin", c.fin()},           {"data", c.data()},
                {"total", c.total()}};
  };
  json out = {{"interface", capture.interface()}};
  if (!capture.error().empty()) {
    out["error"] = capture.error();
    return out;
  }
  out["to_server"] = counts(capture.to_server());
  out["from_server"] = counts(capture.from_server());
  out["dropped_by_kernel"] = capture.dropped_by_kernel();
  if (!capture.pcap().empty() && !options_.out_dir.empty()) {
    const std::string file = absl::StrCat(options_.out_dir, "/run-", index, "-", host, ".pcap");
    std::error_code ec;
    std::filesystem::create_directories(options_.out_dir, ec);
    std::ofstream(file, std::ios::binary) << capture.pcap();
    out["file"] = file;
  } else {
    out["agent_file"] = capture.agent_file();
  }
  return out;
}

HostHandle* Orchestrator::Host(const std::string& name) {
  for (auto& h : hosts_) {
    if (h.name == name) return &h;
  }
  return nullptr;
}

std::vector<RunFailure> Orchestrator::CheckCapabilities(const Scenario& scenario) const {
  std::vector<RunFailure> problems;
  for (const auto& h : hosts_) {
    if (scenario.settings.contains(h.name) && !HasCapability(h.info, v1::CAPABILITY_SYSCTL_WRITE)) {
      problems.push_back(
          {h.name, absl::StrCat("cannot change kernel settings: ",
                                MissingReason(h.info, v1::CAPABILITY_SYSCTL_WRITE))});
    }
    if (!HasCapability(h.info, v1::CAPABILITY_IO_URING)) {
      for (const auto& f : scenario.floods) {
        if (f.host == h.name) {
          problems.push_back(
              {h.name, absl::StrCat("cannot flood: io_uring unavailable: ",
                                    MissingReason(h.info, v1::CAPABILITY_IO_URING))});
          break;
        }
      }
    }
  }
  for (const auto& s : scenario.shaping) {
    const HostHandle* h = nullptr;
    for (const auto& candidate : hosts_) {
      if (candidate.name == s.host) h = &candidate;
    }
    if (h == nullptr) continue;
    const bool netem = HasCapability(h->info, v1::CAPABILITY_NETEM);
    const bool nfqueue = HasCapability(h->info, v1::CAPABILITY_NFQUEUE);
    if (s.backend == ShapingBackend::kNetem && !netem) {
      problems.push_back({s.host, absl::StrCat("shaping backend netem cannot work here: ",
                                               MissingReason(h->info, v1::CAPABILITY_NETEM))});
    } else if (s.backend == ShapingBackend::kNfqueue && !nfqueue) {
      problems.push_back({s.host, absl::StrCat("shaping backend nfqueue cannot work here: ",
                                               MissingReason(h->info, v1::CAPABILITY_NFQUEUE))});
    } else if (s.backend == ShapingBackend::kAuto && !netem && !nfqueue) {
      problems.push_back(
          {s.host, absl::StrCat("no shaping backend works here: netem: ",
                                MissingReason(h->info, v1::CAPABILITY_NETEM),
                                "; nfqueue: ", MissingReason(h->info, v1::CAPABILITY_NFQUEUE))});
    }
    if (h->interface.empty()) {
      problems.push_back(
          {s.host, "shaping needs the host's interface: set hosts." + s.host + ".interface"});
    }
  }
  return problems;
}

json Orchestrator::Run(const RunPlan& plan, int index, std::vector<RunFailure>* failures) {
  const Scenario& s = plan.scenario;
  json run = json::object();
  run["index"] = index;
  run["params"] = json::object();
  for (const auto& [path, value] : plan.params) run["params"][path] = SweepValueJson(value);
  const std::string run_id =
      absl::StrCat(s.name, "-", index, "-", getpid(), "-", Clock::now().time_since_epoch().count());
  run["run_id"] = run_id;

  std::mutex mu;  // guards run errors, samples and per-host results below
  std::vector<std::string> errors;
  auto fail = [&](const std::string& host, const std::string& message) {
    std::lock_guard<std::mutex> lock(mu);
    errors.push_back(absl::StrCat(host, ": ", message));
    failures->push_back({host, message});
  };
  auto ok = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return errors.empty();
  };

  // Lease: the agent ends the run by itself if we vanish without breaking the stream.
  nanoseconds budget{0};
  for (const auto& f : s.floods) budget = std::max(budget, FloodBudget(f));
  const nanoseconds lease = 2 * budget + std::chrono::minutes(2);

  // 1. Begin everywhere and keep a Watch stream open per agent.
  std::vector<std::unique_ptr<WatchHandle>> watches(hosts_.size());
  struct RawSample {
    std::string host;
    v1::Sample sample;
  };
  std::vector<RawSample> samples;
  ParallelFor(hosts_.size(), [&](size_t i) {
    HostHandle& h = hosts_[i];
    v1::BeginRunRequest begin;
    begin.set_run_id(run_id);
    proto::ToProto(s.sample_interval, begin.mutable_sample_interval());
    proto::ToProto(lease, begin.mutable_lease());
    if (absl::Status st = h.client->BeginRun(begin); !st.ok()) {
      fail(h.name, std::string(st.message()));
      return;
    }
    auto watch = h.client->Watch(run_id, [&, name = h.name](const v1::Sample& sample) {
      std::lock_guard<std::mutex> lock(mu);
      samples.push_back({name, sample});
    });
    if (!watch.ok()) {
      fail(h.name, std::string(watch.status().message()));
      return;
    }
    watches[i] = *std::move(watch);
  });

  // 2. Settings (read back), then shaping (read back).
  json hosts_json = json::object();
  for (const auto& h : hosts_) {
    json settings = json::object();
    for (const auto& setting : h.info.settings()) settings[setting.key()] = setting.value();
    hosts_json[h.name] = {{"kernel", h.info.kernel_release()},
                          {"hostname", h.info.hostname()},
                          {"agent", h.client->address()},
                          {"settings", settings}};
  }
  if (ok()) {
    ParallelFor(hosts_.size(), [&](size_t i) {
      HostHandle& h = hosts_[i];
      auto it = s.settings.find(h.name);
      if (it == s.settings.end()) return;
      v1::ApplySettingsRequest request;
      request.set_run_id(run_id);
      for (const auto& [key, value] : it->second) {
        auto* setting = request.add_settings();
        setting->set_key(key);
        setting->set_value(value);
      }
      auto applied = h.client->ApplySettings(request);
      if (!applied.ok()) {
        fail(h.name, std::string(applied.status().message()));
        return;
      }
      std::lock_guard<std::mutex> lock(mu);
      for (const auto& setting : applied->settings()) {
        hosts_json[h.name]["settings"][setting.key()] = setting.value();
      }
    });
  }
  if (ok() && !s.shaping.empty()) {
    std::map<std::string, v1::ApplyShapingRequest> by_host;
    for (const auto& def : s.shaping) {
      HostHandle* h = Host(def.host);
      v1::ApplyShapingRequest& request = by_host[def.host];
      request.set_run_id(run_id);
      auto* shaping = request.add_shapings();
      shaping->set_interface(h->interface);
      shaping->set_backend(proto::ToProto(def.backend));
      proto::ToProto(def.delay, shaping->mutable_delay());
      proto::ToProto(def.jitter, shaping->mutable_jitter());
      shaping->set_loss_percent(def.loss_percent);
      shaping->set_rate_bits_per_second(def.rate_bits_per_second);
      if (!def.to.empty()) shaping->set_destination(Host(def.to)->address + "/32");
    }
    for (auto& [name, request] : by_host) {
      auto applied = Host(name)->client->ApplyShaping(request);
      if (!applied.ok()) {
        fail(name, std::string(applied.status().message()));
        break;
      }
      json list = json::array();
      for (const auto& a : applied->shapings()) {
        list.push_back({{"interface", a.interface()},
                        {"backend", proto::ShapingBackendName(a.backend())},
                        {"delay_ms", Ms(proto::FromProto(a.delay()))},
                        {"jitter_ms", Ms(proto::FromProto(a.jitter()))},
                        {"loss_percent", a.loss_percent()},
                        {"rate_bits_per_second", a.rate_bits_per_second()},
                        {"destination", a.destination()}});
      }
      hosts_json[name]["shaping"] = list;
    }
  }

  // 3. Listeners, then flood targets resolved against their bound addresses.
  json listeners_json = json::object();
  std::map<std::string, std::string> listener_port;  // name -> bound port
  if (ok()) {
    for (const auto& l : s.listeners) {
      HostHandle* h = Host(l.host);
      v1::StartListenerRequest request;
      request.set_run_id(run_id);
      auto* spec = request.mutable_listener();
      spec->set_name(l.name);
      spec->set_address(l.address);
      spec->set_port(static_cast<uint32_t>(l.port));
      spec->set_backlog(static_cast<int32_t>(l.backlog));
      spec->set_accept(proto::ToProto(l.accept));
      proto::ToProto(l.accept_interval, spec->mutable_accept_interval());
      spec->set_close_on_accept(l.close_on_accept);
      auto started = h->client->StartListener(request);
      if (!started.ok()) {
        fail(h->name, absl::StrCat("listeners.", l.name, ": ", started.status().message()));
        break;
      }
      const std::string& bound = started->listener().address();
      listener_port[l.name] = bound.substr(bound.rfind(':') + 1);
    }
  }

  // Packet capture on the listed hosts, on their listener ports, before any flood starts.
  if (ok()) {
    for (const auto& c : s.captures) {
      HostHandle* h = Host(c.host);
      v1::StartCaptureRequest request;
      request.set_run_id(run_id);
      request.set_interface(h->interface);
      if (auto started = h->client->StartCapture(request); !started.ok()) {
        fail(h->name, absl::StrCat("capture: ", started.status().message()));
      }
    }
  }

  // 4. Clock offsets, then floods scheduled for one instant on every agent.
  std::map<std::string, std::vector<const FloodDef*>> floods_by_host;
  for (const auto& f : s.floods) floods_by_host[f.host].push_back(&f);
  std::map<std::string, nanoseconds> offsets;
  Clock::time_point start_at{};
  if (ok() && !floods_by_host.empty()) {
    // Every host's offset, not only the flooding ones: sample times are corrected with them.
    std::vector<nanoseconds> host_offsets(hosts_.size());
    std::vector<nanoseconds> rtts(hosts_.size());
    ParallelFor(hosts_.size(), [&](size_t i) {
      auto offset = MeasureClockOffset(*hosts_[i].client, 5, &rtts[i]);
      if (!offset.ok()) {
        fail(hosts_[i].name, std::string(offset.status().message()));
        return;
      }
      host_offsets[i] = *offset;
    });
    nanoseconds max_rtt{0};
    for (size_t i = 0; i < hosts_.size(); ++i) {
      offsets[hosts_[i].name] = host_offsets[i];
      max_rtt = std::max(max_rtt, rtts[i]);
      hosts_json[hosts_[i].name]["clock_offset_ms"] = Ms(host_offsets[i]);
    }
    start_at = Clock::now() + std::max<nanoseconds>(options_.start_lead, 4 * max_rtt);
    std::vector<std::string> names;
    for (const auto& [name, floods] : floods_by_host) names.push_back(name);
    if (ok()) {
      ParallelFor(names.size(), [&](size_t i) {
        HostHandle* h = Host(names[i]);
        v1::StartFloodsRequest request;
        request.set_run_id(run_id);
        proto::ToProto(start_at + std::chrono::duration_cast<Clock::duration>(offsets[h->name]),
                       request.mutable_start_at());
        for (const FloodDef* f : floods_by_host[h->name]) {
          auto* spec = request.add_floods();
          spec->set_name(f->name);
          std::string target = f->target;
          if (const ListenerDef* l = s.FindListener(f->target); l != nullptr) {
            const HostHandle* server = Host(l->host);
            std::string address = l->address;
            if (address.empty() || address == "0.0.0.0" || address == "::") {
              address = server == h ? (address == "::" ? "::1" : "127.0.0.1") : server->address;
            }
            target = absl::StrContains(address, ':')
                         ? absl::StrCat("[", address, "]:", listener_port[l->name])
                         : absl::StrCat(address, ":", listener_port[l->name]);
          }
          spec->set_target(target);
          spec->set_connections(static_cast<uint64_t>(f->connections));
          spec->set_concurrency(static_cast<uint32_t>(f->concurrency));
          spec->set_rate(f->rate);
          proto::ToProto(f->connect_timeout, spec->mutable_connect_timeout());
          proto::ToProto(f->start_after, spec->mutable_start_after());
          proto::ToProto(f->hold, spec->mutable_hold());
          spec->set_payload(f->payload);
        }
        if (absl::Status st = h->client->StartFloods(request); !st.ok()) {
          fail(h->name, std::string(st.message()));
        }
      });
    }
  }

  // 5. Wait for the floods, then take every host's final snapshot at one point.
  std::vector<v1::CollectResultsResponse> collected(hosts_.size());
  if (ok()) {
    std::vector<size_t> flooding;
    for (size_t i = 0; i < hosts_.size(); ++i) {
      if (floods_by_host.contains(hosts_[i].name)) flooding.push_back(i);
    }
    const nanoseconds wait = budget + std::chrono::seconds(60);
    ParallelFor(flooding.size(), [&](size_t k) {
      HostHandle& h = hosts_[flooding[k]];
      auto result = h.client->CollectResults(run_id, wait, /*wait_only=*/true);
      if (!result.ok()) fail(h.name, std::string(result.status().message()));
    });
  }
  if (ok()) {
    ParallelFor(hosts_.size(), [&](size_t i) {
      auto result = hosts_[i].client->CollectResults(run_id, std::chrono::seconds(30));
      if (!result.ok()) {
        fail(hosts_[i].name, std::string(result.status().message()));
        return;
      }
      collected[i] = *std::move(result);
    });
  }

  // 6. End everywhere, whatever happened: agents stop listeners and restore settings.
  ParallelFor(hosts_.size(), [&](size_t i) {
    HostHandle& h = hosts_[i];
    auto ended = h.client->EndRun(run_id);
    if (!ended.ok()) fail(h.name, absl::StrCat("ending the run: ", ended.status().message()));
    if (watches[i] != nullptr) {
      (void)watches[i]->Wait();
      watches[i].reset();
    }
  });

  // 7. Result document.
  std::map<std::pair<std::string, std::string>, const v1::ServerSocket*> server_by_tuple;
  for (size_t i = 0; i < hosts_.size(); ++i) {
    const v1::CollectResultsResponse& c = collected[i];
    for (const auto& l : c.listeners()) {
      listeners_json[l.name()] = {
          {"host", hosts_[i].name},   {"address", l.address()},
          {"backlog", l.backlog()},   {"backlog_effective", l.backlog_effective()},
          {"accepted", l.accepted()}, {"accept_queue_peak", l.accept_queue_peak()}};
    }
    for (const auto& sock : c.server_sockets())
      server_by_tuple[{sock.local(), sock.remote()}] = &sock;
    json counters = json::object();
    for (const auto& counter : c.counter_deltas()) counters[counter.name()] = counter.value();
    if (!c.counter_deltas().empty()) hosts_json[hosts_[i].name]["counters"] = counters;
    if (c.has_capture())
      hosts_json[hosts_[i].name]["packets"] = CaptureJson(c.capture(), index, hosts_[i].name);
    if (!c.drop_events().empty()) {
      json events = json::object();
      for (const auto& [name, n] : c.drop_events()) events[name] = n;
      hosts_json[hosts_[i].name]["drop_events"] = events;
    } else if (!c.drop_events_unavailable().empty()) {
      hosts_json[hosts_[i].name]["drop_events_unavailable"] = c.drop_events_unavailable();
    }
  }

  json floods_json = json::object();
  std::vector<double> lateness_ms;
  for (size_t i = 0; i < hosts_.size(); ++i) {
    for (const auto& f : collected[i].floods()) {
      json errors_json = json::object();
      for (const auto& [name, n] : f.errors()) errors_json[name] = n;
      json fates = json::object();
      json connections = json::array();
      // Reset times tell abort_on_overflow RSTs (~RTT) from SYN-ACK retry exhaustion.
      std::vector<double> reset_ms;
      std::vector<double> timeout_ms;
      for (const auto& c : f.connections()) {
        if (c.has_outcome_after()) {
          const double at = Ms(proto::FromProto(c.outcome_after()));
          if (c.outcome() == v1::OUTCOME_RESET) reset_ms.push_back(at);
          if (c.outcome() == v1::OUTCOME_TIMED_OUT) timeout_ms.push_back(at);
        }
        const std::string fate = ConnectionFate(c, server_by_tuple);
        fates[fate] = fates.value(fate, 0) + 1;
        if (options_.connections) {
          json row = {{"local", c.local()},
                      {"remote", c.remote()},
                      {"outcome", OutcomeName(c.outcome())},
                      {"fate", fate}};
          if (!c.error_name().empty()) row["error"] = c.error_name();
          if (c.has_connect_latency())
            row["connect_ms"] = Ms(proto::FromProto(c.connect_latency()));
          if (c.has_outcome_after()) row["outcome_ms"] = Ms(proto::FromProto(c.outcome_after()));
          connections.push_back(row);
        }
      }
      json fj = {{"host", hosts_[i].name},
                 {"attempted", f.attempted()},
                 {"established", f.established()},
                 {"reset", f.reset()},
                 {"refused", f.refused()},
                 {"timed_out", f.timed_out()},
                 {"errors", errors_json},
                 {"connect_latency_ms", Summary(f.connect_latency())},
                 {"reset_after_ms", reset_ms},
                 {"timed_out_after_ms", timeout_ms},
                 {"fates", fates}};
      json buckets = json::object();
      for (const auto& [b, n] : f.connect_latency_histogram().buckets()) {
        buckets[absl::StrCat(b)] = n;
      }
      fj["connect_latency_histogram"] = {
          {"sub_bucket_bits", f.connect_latency_histogram().sub_bucket_bits()},
          {"buckets", buckets}};
      if (options_.connections) fj["connections"] = connections;
      const FloodDef* def = nullptr;
      for (const auto& candidate : s.floods) {
        if (candidate.name == f.name()) def = &candidate;
      }
      if (def != nullptr && offsets.contains(hosts_[i].name)) {
        const auto actual = proto::FromProto(f.started_at()) -
                            std::chrono::duration_cast<Clock::duration>(offsets[hosts_[i].name]);
        const auto scheduled =
            start_at + std::chrono::duration_cast<Clock::duration>(def->start_after);
        const double late = Ms(actual - scheduled);
        fj["start_lateness_ms"] = late;
        lateness_ms.push_back(late);
      }
      floods_json[f.name()] = fj;
    }
  }
  if (!lateness_ms.empty()) {
    const auto [lo, hi] = std::minmax_element(lateness_ms.begin(), lateness_ms.end());
    run["start_skew_ms"] = *hi - *lo;
    run["start_lateness_ms"] = *hi;
  } else {
    run["start_skew_ms"] = 0.0;
  }

  json samples_json = json::array();
  const Clock::time_point t0 = start_at == Clock::time_point{} ? Clock::now() : start_at;
  std::sort(samples.begin(), samples.end(), [](const RawSample& a, const RawSample& b) {
    return proto::FromProto(a.sample.at()) < proto::FromProto(b.sample.at());
  });
  for (const auto& raw : samples) {
    const auto offset = offsets.contains(raw.host) ? offsets[raw.host] : nanoseconds(0);
    json sj = {{"t_ms", Ms(proto::FromProto(raw.sample.at()) -
                           std::chrono::duration_cast<Clock::duration>(offset) - t0)},
               {"host", raw.host}};
    json ls = json::object();
    for (const auto& l : raw.sample.listeners()) {
      ls[l.name()] = {{"accept_queue", l.accept_queue()},
                      {"accept_queue_max", l.accept_queue_max()},
                      {"syn_recv", l.syn_recv()}};
    }
    sj["listeners"] = ls;
    json cs = json::object();
    for (const auto& c : raw.sample.counter_deltas()) cs[c.name()] = c.value();
    sj["counters"] = cs;
    samples_json.push_back(sj);
  }

  run["listeners"] = listeners_json;
  run["floods"] = floods_json;
  run["hosts"] = hosts_json;
  run["samples"] = samples_json;
  if (!errors.empty()) run["errors"] = errors;
  return run;
}

}  // namespace synq::controller
