#include "controller/run/phases.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/limits.h"
#include "common/saturating.h"
#include "controller/run/fan_out.h"
#include "controller/run/flood_request.h"
#include "controller/run/target_resolver.h"
#include "controller/scenario/rate_profile.h"
#include "controller/verdict/expression.h"
#include "proto/proto_enums.h"
#include "proto/proto_time.h"

namespace synq::controller {

using std::chrono::nanoseconds;

int RunContext::HostIndex(const std::string& name) const {
  for (size_t i = 0; i < hosts.size(); ++i) {
    if (hosts[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

void RunContext::Fail(const std::string& host, const std::string& message, bool data_lost) {
  std::lock_guard<std::mutex> lock(mu_);
  inputs.errors.push_back(absl::StrCat(host, ": ", message));
  failures.push_back({host, message});
  const int i = HostIndex(host);
  if (data_lost && i >= 0 && static_cast<size_t>(i) < inputs.hosts.size() &&
      inputs.hosts[i].error.empty()) {
    inputs.hosts[i].error = message;
  }
}

void RunContext::FailCall(size_t i, const absl::Status& status, const char* phase,
                          const std::string& what, bool data_lost) {
  // Past the deadline (or its pings unanswered, see agent_client.cc): another call would only
  // wait out its own deadline. UNAVAILABLE is not enough: agents use it for their own errors.
  if (status.code() == absl::StatusCode::kDeadlineExceeded) {
    std::lock_guard<std::mutex> lock(mu_);
    unresponsive.insert(i);
  }
  Fail(hosts[i].name,
       absl::StrCat(what, what.empty() ? "" : ": ", status.message(), " (phase: ", phase, ")"),
       data_lost);
}

bool RunContext::ok() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failures.empty();
}

void RunContext::Locked(const std::function<void()>& fn) {
  std::lock_guard<std::mutex> lock(mu_);
  fn();
}

nanoseconds FloodBudget(const FloodDef& f) {
  if (f.duration.count() > 0 || f.rate_kind != RateKind::kConstant) {
    // Launches follow the schedule; the last one may wait its full timeout, then its lifetime.
    return common::SaturatingAdd(
        common::SaturatingAdd(f.start_after, LaunchWindow(f)),
        common::SaturatingAdd(f.connect_timeout, common::SaturatingAdd(f.lifetime, f.hold)));
  }
  // Saturating: 10M one-at-a-time connects x a 1 h timeout is past int64 nanoseconds.
  const int64_t waves = (f.connections + f.concurrency - 1) / std::max<int64_t>(1, f.concurrency);
  nanoseconds pacing{0};
  if (f.rate > 0)
    pacing = common::SaturatingNanos(1e9 * static_cast<double>(f.connections) / f.rate);
  return common::SaturatingAdd(
      common::SaturatingAdd(f.start_after, pacing),
      common::SaturatingAdd(common::SaturatingMul(f.connect_timeout, waves), f.hold));
}

absl::StatusOr<nanoseconds> MeasureClockOffset(AgentClient& client, int rounds, nanoseconds* rtt,
                                               const std::function<Clock::time_point()>& now) {
  nanoseconds best_rtt = nanoseconds::max();
  nanoseconds best_offset{0};
  for (int i = 0; i < rounds; ++i) {
    const auto t0 = now();
    auto clock = client.GetClock();
    const auto t1 = now();
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

namespace {
// GetClock rounds per host: the offset is taken from the round trip with the smallest RTT.
constexpr int kClockRounds = 5;
// How long End waits for the Watch streams to end after EndRun, all together.
constexpr nanoseconds kWatchEndWait = std::chrono::seconds(10);
}  // namespace

nanoseconds MeasureClockOffsets(RunContext& ctx, int rounds) {
  const size_t n = ctx.hosts.size();
  std::vector<nanoseconds> best_rtt(n, nanoseconds::max());
  std::vector<nanoseconds> best_offset(n, nanoseconds(0));
  std::vector<char> failed(n, 0);
  nanoseconds slowest_round{0};
  for (int r = 0; r < rounds && ctx.ok(); ++r) {
    const Clock::time_point round_began = ctx.options.now();
    FanOut(n, [&](size_t i, std::function<void()> done) {
      if (failed[i]) return done();
      const Clock::time_point t0 = ctx.options.now();
      ctx.hosts[i].client->GetClockAsync(
          [&, i, t0, done](absl::StatusOr<v1::GetClockResponse> clock) {
            const Clock::time_point t1 = ctx.options.now();
            if (!clock.ok()) {
              failed[i] = 1;
              ctx.FailCall(i, clock.status(), "schedule");
            } else if (t1 - t0 < best_rtt[i]) {
              best_rtt[i] = t1 - t0;
              best_offset[i] = proto::FromProto(clock->now()) - (t0 + (t1 - t0) / 2);
            }
            done();
          });
    });
    slowest_round = std::max<nanoseconds>(slowest_round, ctx.options.now() - round_began);
  }
  ctx.Locked([&] {
    for (size_t i = 0; i < n; ++i) {
      if (!failed[i] && best_rtt[i] != nanoseconds::max()) {
        ctx.inputs.hosts[i].clock_offset = best_offset[i];
      }
    }
  });
  return slowest_round;
}

void BeginPhase(RunContext& ctx) {
  const Scenario& s = ctx.scenario();
  ctx.run_id = absl::StrCat(s.name, "-", ctx.index, "-", getpid(), "-",
                            ctx.options.now().time_since_epoch().count());
  ctx.inputs.plan = &ctx.plan;
  ctx.inputs.index = ctx.index;
  ctx.inputs.run_id = ctx.run_id;
  ctx.inputs.connections = ctx.options.connections;
  ctx.inputs.hosts.resize(ctx.hosts.size());
  for (size_t i = 0; i < ctx.hosts.size(); ++i) {
    result::HostReplies& r = ctx.inputs.hosts[i];
    r.name = ctx.hosts[i].name;
    r.agent = ctx.hosts[i].client->address();
    r.address = ctx.hosts[i].address;
    r.info = ctx.hosts[i].info;
  }
  ctx.watches.resize(ctx.hosts.size());
  // Lease: the agent ends the run by itself if we vanish without breaking the stream.
  for (const auto& f : s.floods) ctx.flood_budget = std::max(ctx.flood_budget, FloodBudget(f));
  // Saturating, then capped at what an agent accepts (common::kMaxLease).
  ctx.lease = std::min(
      common::SaturatingAdd(common::SaturatingMul(ctx.flood_budget, 2), std::chrono::minutes(2)),
      common::kMaxLease);
  if (ctx.options.lease.count() > 0) ctx.lease = ctx.options.lease;

  v1::BeginRunRequest begin;
  begin.set_run_id(ctx.run_id);
  proto::ToProto(s.sample_interval, begin.mutable_sample_interval());
  proto::ToProto(ctx.lease, begin.mutable_lease());
  std::vector<char> begun(ctx.hosts.size(), 0);
  FanOut(ctx.hosts.size(), [&](size_t i, std::function<void()> done) {
    ctx.hosts[i].client->BeginRunAsync(begin, [&, i, done](absl::Status st) {
      if (st.ok()) {
        begun[i] = 1;
      } else {
        ctx.FailCall(i, st, "begin");
      }
      done();
    });
  });
  // The Watch streams are callback reactors: opening them all costs no thread and no wait.
  for (size_t i = 0; i < ctx.hosts.size(); ++i) {
    if (!begun[i]) continue;
    auto watch = ctx.hosts[i].client->Watch(ctx.run_id, [&ctx, i](const v1::Sample& sample) {
      ctx.Locked([&] { ctx.inputs.hosts[i].samples.push_back(sample); });
      if (ctx.options.on_sample) ctx.options.on_sample(ctx.hosts[i].name, sample);
    });
    if (!watch.ok()) {
      ctx.FailCall(i, watch.status(), "begin");
      continue;
    }
    ctx.watches[i] = *std::move(watch);
  }
}

namespace {

void ApplySettings(RunContext& ctx) {
  const Scenario& s = ctx.scenario();
  FanOut(ctx.hosts.size(), [&](size_t i, std::function<void()> done) {
    HostHandle& h = ctx.hosts[i];
    auto it = s.settings.find(h.name);
    if (it == s.settings.end()) return done();
    v1::ApplySettingsRequest request;
    request.set_run_id(ctx.run_id);
    for (const auto& [key, value] : it->second) {
      auto* setting = request.add_settings();
      setting->set_key(key);
      setting->set_value(value);
    }
    h.client->ApplySettingsAsync(
        request, [&ctx, i, done](absl::StatusOr<v1::ApplySettingsResponse> applied) {
          if (!applied.ok()) {
            ctx.FailCall(i, applied.status(), "prepare");
          } else {
            ctx.Locked([&] {
              for (const auto& setting : applied->settings()) {
                ctx.inputs.hosts[i].applied_settings[setting.key()] = setting.value();
              }
            });
          }
          done();
        });
  });
}

void ApplyShaping(RunContext& ctx) {
  const Scenario& s = ctx.scenario();
  std::map<int, v1::ApplyShapingRequest> by_host;
  for (const auto& def : s.shaping) {
    const int i = ctx.HostIndex(def.host);
    v1::ApplyShapingRequest& request = by_host[i];
    request.set_run_id(ctx.run_id);
    auto* shaping = request.add_shapings();
    shaping->set_interface(ctx.hosts[i].interface);
    shaping->set_backend(proto::ToProto(def.backend));
    proto::ToProto(def.delay, shaping->mutable_delay());
    proto::ToProto(def.jitter, shaping->mutable_jitter());
    shaping->set_loss_percent(def.loss_percent);
    shaping->set_rate_bits_per_second(def.rate_bits_per_second);
    if (!def.to.empty()) {
      shaping->set_destination(ctx.hosts[ctx.HostIndex(def.to)].address + "/32");
    }
  }
  std::vector<std::pair<int, v1::ApplyShapingRequest>> requests(by_host.begin(), by_host.end());
  FanOut(requests.size(), [&](size_t k, std::function<void()> done) {
    const int i = requests[k].first;
    ctx.hosts[i].client->ApplyShapingAsync(
        requests[k].second, [&ctx, i, done](absl::StatusOr<v1::ApplyShapingResponse> applied) {
          if (!applied.ok()) {
            ctx.FailCall(i, applied.status(), "prepare");
          } else {
            ctx.Locked([&] {
              for (const auto& a : applied->shapings()) {
                ctx.inputs.hosts[i].applied_shaping.push_back(a);
              }
            });
          }
          done();
        });
  });
}

}  // namespace

void PreparePhase(RunContext& ctx) {
  if (!ctx.ok()) return;
  ApplySettings(ctx);
  if (ctx.ok() && !ctx.scenario().shaping.empty()) ApplyShaping(ctx);
  if (!ctx.ok()) return;

  // Listeners in file order on each host (a later one may reuse a port an earlier one freed);
  // every host's chain at once.
  std::map<int, std::vector<ChainStep>> listeners;
  for (const auto& l : ctx.scenario().listeners) {
    const int hi = ctx.HostIndex(l.host);
    v1::StartListenerRequest request;
    request.set_run_id(ctx.run_id);
    auto* spec = request.mutable_listener();
    spec->set_name(l.name);
    spec->set_address(l.address);
    spec->set_port(static_cast<uint32_t>(l.port));
    spec->set_backlog(static_cast<int32_t>(l.backlog));
    spec->set_accept(proto::ToProto(l.accept));
    proto::ToProto(l.accept_interval, spec->mutable_accept_interval());
    spec->set_accept_rate(l.accept_rate);
    for (const ListenerDef::Pause& p : l.pauses) {
      v1::Pause* pause = spec->add_pauses();
      proto::ToProto(p.at, pause->mutable_at());
      proto::ToProto(p.length, pause->mutable_length());
    }
    spec->set_close_on_accept(l.close_on_accept);
    listeners[hi].push_back([&ctx, hi, request, name = l.name,
                             host = l.host](std::function<void(bool)> next) {
      ctx.hosts[hi].client->StartListenerAsync(
          request, [&ctx, hi, name, host, next](absl::StatusOr<v1::StartListenerResponse> started) {
            if (!started.ok()) {
              ctx.FailCall(hi, started.status(), "prepare", absl::StrCat("listeners.", name));
              return next(false);
            }
            ctx.Locked([&] {
              ctx.bound[name] = {host, started->listener().ip(), started->listener().port()};
            });
            next(true);
          });
    });
  }
  // Listeners of other processes (`observe:`), found by port on their host's agent, after the
  // host's own listeners.
  for (const auto& o : ctx.scenario().observes) {
    const int hi = ctx.HostIndex(o.host);
    v1::ObserveListenerRequest request;
    request.set_run_id(ctx.run_id);
    request.set_name(o.name);
    request.set_port(static_cast<uint32_t>(o.port));
    request.set_address(o.address);
    listeners[hi].push_back(
        [&ctx, hi, request, name = o.name, host = o.host](std::function<void(bool)> next) {
          ctx.hosts[hi].client->ObserveListenerAsync(
              request,
              [&ctx, hi, name, host, next](absl::StatusOr<v1::StartListenerResponse> observed) {
                if (!observed.ok()) {
                  ctx.FailCall(hi, observed.status(), "prepare", absl::StrCat("observe.", name));
                  return next(false);
                }
                ctx.Locked([&] {
                  ctx.bound[name] = {host, observed->listener().ip(), observed->listener().port()};
                });
                next(true);
              });
        });
  }
  // Packet capture on the listed hosts, on their listener ports, before any flood starts.
  for (const auto& c : ctx.scenario().captures) {
    const int hi = ctx.HostIndex(c.host);
    v1::StartCaptureRequest request;
    request.set_run_id(ctx.run_id);
    request.set_interface(ctx.hosts[hi].interface);
    listeners[hi].push_back([&ctx, hi, request](std::function<void(bool)> next) {
      ctx.hosts[hi].client->StartCaptureAsync(
          request, [&ctx, hi, next](absl::StatusOr<v1::StartCaptureResponse> started) {
            if (!started.ok()) {
              ctx.FailCall(hi, started.status(), "prepare", "capture");
              return next(false);
            }
            next(true);
          });
    });
  }
  std::vector<std::vector<ChainStep>> chains;
  for (auto& [hi, steps] : listeners) chains.push_back(std::move(steps));
  RunChains(std::move(chains));
}

void SchedulePhase(RunContext& ctx) {
  const Scenario& s = ctx.scenario();
  if (!ctx.ok() || s.floods.empty()) return;

  // Every host's offset, not only the flooding ones: sample times are corrected with them.
  const nanoseconds round_time = MeasureClockOffsets(ctx, kClockRounds);
  if (!ctx.ok()) return;

  // Targets, resolved once: the request carries them and the result reports them.
  std::map<int, v1::StartFloodsRequest> by_host;
  for (const auto& f : s.floods) {
    const ListenerDef* l = s.FindListener(f.target);
    // An observed listener resolves like a listener of synq's own: by where it is bound.
    ListenerDef observed;
    if (const ObserveDef* o = l == nullptr ? s.FindObserved(f.target) : nullptr; o != nullptr) {
      observed.name = o->name;
      observed.host = o->host;
      observed.address = o->address;
      observed.port = o->port;
      l = &observed;
    }
    const BoundListener* bound = nullptr;
    std::string listener_address;
    if (l != nullptr) {
      auto it = ctx.bound.find(l->name);
      if (it != ctx.bound.end()) bound = &it->second;
      listener_address = ctx.hosts[ctx.HostIndex(l->host)].address;
    }
    auto target = ResolveTarget(f, l, bound, listener_address);
    if (!target.ok()) {
      ctx.Fail(f.host, std::string(target.status().message()));
      return;
    }
    ctx.inputs.targets[f.name] = *target;
    v1::StartFloodsRequest& request = by_host[ctx.HostIndex(f.host)];
    auto* spec = request.add_floods();
    spec->set_name(f.name);
    spec->set_target(target->ToString());
    spec->set_connections(static_cast<uint64_t>(f.connections));
    spec->set_concurrency(static_cast<uint32_t>(f.concurrency));
    spec->set_rate(f.rate);
    proto::ToProto(f.connect_timeout, spec->mutable_connect_timeout());
    proto::ToProto(f.start_after, spec->mutable_start_after());
    proto::ToProto(f.hold, spec->mutable_hold());
    spec->set_payload(f.payload.str());
    // Duration, rate profile, close, threads, sources; per-attempt records only when
    // --connections asks for them (the fate join then reads them).
    if (absl::Status st = FillSustainedFloodSpec(f, ctx.hosts[ctx.HostIndex(f.host)].info,
                                                 absl::StrContains(target->ip, ':'),
                                                 ctx.options.connections, spec);
        !st.ok()) {
      ctx.Fail(f.host, std::string(st.message()));
      return;
    }
  }
  // Pauses count from the flood start: a host whose listeners pause learns it too, by a
  // StartFloods without floods when it runs none.
  for (const auto& l : s.listeners) {
    if (!l.pauses.empty()) by_host[ctx.HostIndex(l.host)];
  }

  std::vector<std::pair<int, v1::StartFloodsRequest>> requests(by_host.begin(), by_host.end());
  for (auto& [i, request] : requests) request.set_run_id(ctx.run_id);

  // Arm, then fire (HostInfo.armed_start): every agent first plans, checks and starts its
  // floods' threads, which wait; the instant is chosen only once all of them hold their floods,
  // so the lead covers a call as small as GetClock rather than each agent's planning. Agents
  // that cannot arm get floods and instant in one call, as before.
  const bool arm = std::all_of(requests.begin(), requests.end(), [&ctx](const auto& r) {
    return ctx.hosts[r.first].info.armed_start();
  });
  if (arm) {
    FanOut(requests.size(), [&](size_t k, std::function<void()> done) {
      const int i = requests[k].first;
      ctx.hosts[i].client->StartFloodsAsync(requests[k].second, [&ctx, i, done](absl::Status st) {
        if (!st.ok()) ctx.FailCall(i, st, "schedule");
        done();
      });
    });
    // Armed floods that are never fired never start: ending the run stops them.
    if (!ctx.ok()) return;
    for (auto& [i, request] : requests) request.clear_floods();
  }

  // The instant is sized from the measured fan-out: the slowest whole GetClock round (every
  // agent at once, send to last answer). Without arming, StartFloods' round costs more (bigger
  // requests, and each agent plans its floods before it answers): on one 2-core machine with
  // 200 agents, four rounds left half the agents answering after the instant, so the lead is
  // eight. start_lead is the floor. Whether every agent really started at the instant is not
  // assumed: start skew comes from measured starts, and agents that acknowledged late are named
  // in not_observed.
  const nanoseconds lead = std::max<nanoseconds>(ctx.options.start_lead, 8 * round_time);
  const Clock::time_point start_at = ctx.options.now() + lead;
  ctx.inputs.start_at = start_at;
  for (auto& [i, request] : requests) {
    // The one instant, in this agent's clock.
    const nanoseconds offset = *ctx.inputs.hosts[i].clock_offset;
    proto::ToProto(start_at + std::chrono::duration_cast<Clock::duration>(offset),
                   request.mutable_start_at());
  }
  std::vector<std::string> late;  // agents whose acknowledgement came after the instant
  FanOut(requests.size(), [&](size_t k, std::function<void()> done) {
    const int i = requests[k].first;
    ctx.hosts[i].client->StartFloodsAsync(
        requests[k].second, [&ctx, &late, i, start_at, done](absl::Status st) {
          if (!st.ok()) {
            ctx.FailCall(i, st, "schedule");
          } else if (const Clock::time_point acked = ctx.options.now(); acked > start_at) {
            ctx.Locked([&] {
              late.push_back(absl::StrFormat(
                  "%s (%.3f ms after)", ctx.hosts[i].name,
                  std::chrono::duration<double, std::milli>(acked - start_at).count()));
            });
          }
          done();
        });
  });
  if (!late.empty()) {
    std::sort(late.begin(), late.end());
    ctx.inputs.not_observed.push_back(absl::StrCat(
        "start synchronization: the start instant was ",
        std::chrono::duration<double, std::milli>(lead).count(), " ms ahead, but these agents ",
        arm ? "acknowledged the fire of their armed floods" : "acknowledged StartFloods",
        " only after it: ", absl::StrJoin(late, ", "),
        "; their floods started late (see start_lateness_ms)"));
  }
}

nanoseconds CollectWaitTimeout(const RunContext& ctx) {
  // Floods start at start_at and each ends within its budget (every connect waits its full
  // timeout); the margin covers the agent's wake-ups and the merge of worker processes: 10 s,
  // or a tenth of the budget for long floods (a scheduler stall grows with the run).
  const nanoseconds margin = std::max<nanoseconds>(std::chrono::seconds(10), ctx.flood_budget / 10);
  nanoseconds until_start{0};
  if (ctx.inputs.start_at) {
    until_start = std::max<nanoseconds>(nanoseconds(0), *ctx.inputs.start_at - ctx.options.now());
  }
  return until_start + ctx.flood_budget + margin;
}

nanoseconds CollectTimeout(const RunContext& ctx) {
  // Serialising the results is quick unless every connection is listed: then allow 10 s per
  // million requested connections on top of the 30 s that cover a capture of the run.
  nanoseconds t = std::chrono::seconds(30);
  if (ctx.options.connections) {
    int64_t connections = 0;
    for (const auto& f : ctx.scenario().floods) connections += std::max<int64_t>(0, f.connections);
    t += std::chrono::seconds(10) * (connections / 1'000'000 + 1);
  }
  return t;
}

void CollectPhase(RunContext& ctx) {
  // Once floods were started, a host that failed does not cost the others their results: every
  // healthy host is still waited for and collected.
  if (!ctx.ok() && !ctx.inputs.start_at) return;
  auto failed = [&ctx](size_t i) {
    bool f = false;
    ctx.Locked([&] { f = !ctx.inputs.hosts[i].error.empty(); });
    return f;
  };
  std::vector<size_t> flooding;
  for (size_t i = 0; i < ctx.hosts.size(); ++i) {
    if (failed(i)) continue;
    for (const auto& f : ctx.scenario().floods) {
      if (f.host == ctx.hosts[i].name) {
        flooding.push_back(i);
        break;
      }
    }
  }
  const nanoseconds wait = CollectWaitTimeout(ctx);
  FanOut(flooding.size(), [&](size_t k, std::function<void()> done) {
    const size_t i = flooding[k];
    ctx.hosts[i].client->CollectResultsAsync(
        ctx.run_id, wait, /*wait_only=*/true,
        [&ctx, i, done](absl::StatusOr<v1::CollectResultsResponse> waited) {
          if (!waited.ok()) ctx.FailCall(i, waited.status(), "collect");
          done();
        });
  });
  const nanoseconds collect = CollectTimeout(ctx);
  std::vector<absl::StatusOr<v1::CollectResultsResponse>> replies(
      ctx.hosts.size(), absl::UnknownError("not collected"));
  std::vector<char> asked(ctx.hosts.size(), 0);
  FanOut(ctx.hosts.size(), [&](size_t i, std::function<void()> done) {
    if (failed(i)) return done();
    asked[i] = 1;
    ctx.hosts[i].client->CollectResultsAsync(
        ctx.run_id, collect, /*wait_only=*/false,
        [&replies, i, done](absl::StatusOr<v1::CollectResultsResponse> collected) {
          replies[i] = std::move(collected);
          done();
        });
  });
  // Files are written here, not on gRPC's callback threads.
  for (size_t i = 0; i < ctx.hosts.size(); ++i) {
    if (!asked[i]) continue;
    HostHandle& h = ctx.hosts[i];
    absl::StatusOr<v1::CollectResultsResponse>& collected = replies[i];
    if (!collected.ok()) {
      ctx.FailCall(i, collected.status(), "collect");
      continue;
    }
    std::string pcap_file;
    if (collected->has_capture() && !collected->capture().pcap().empty() &&
        !ctx.options.out_dir.empty()) {
      pcap_file = absl::StrCat(ctx.options.out_dir, "/run-", ctx.index, "-", h.name, ".pcap");
      std::error_code ec;
      std::filesystem::create_directories(ctx.options.out_dir, ec);
      std::ofstream out(pcap_file, std::ios::binary);
      out << collected->capture().pcap();
      if (!out) {
        ctx.Fail(h.name, absl::StrCat("cannot write ", pcap_file));
        pcap_file.clear();
      }
      // The bytes live in the file now; the result keeps its name.
      collected->mutable_capture()->clear_pcap();
    }
    ctx.Locked([&] {
      ctx.inputs.hosts[i].collected = *std::move(collected);
      ctx.inputs.hosts[i].pcap_file = pcap_file;
    });
  }
}

void EndPhase(RunContext& ctx) {
  std::vector<char> ended(ctx.hosts.size(), 0);
  FanOut(ctx.hosts.size(), [&](size_t i, std::function<void()> done) {
    bool unresponsive = false;
    ctx.Locked([&] { unresponsive = ctx.unresponsive.contains(i); });
    if (unresponsive) {
      // Its failure is reported already; another call would only wait out another deadline.
      // Cancelling the stream makes the agent end the run as soon as it answers again.
      ctx.watches[i].reset();
      return done();
    }
    ended[i] = 1;
    ctx.hosts[i].client->EndRunAsync(ctx.run_id,
                                     [&ctx, i, done](absl::StatusOr<v1::EndRunResponse> e) {
                                       if (!e.ok()) {
                                         ctx.FailCall(i, e.status(), "end", "ending the run",
                                                      /*data_lost=*/false);
                                       }
                                       done();
                                     });
  });
  // The streams end with the run, after the samples the agent still held. One bound for all:
  // an agent that stopped answering after EndRun must not hold the controller, and many of them
  // must not hold it one after another.
  const auto deadline = std::chrono::steady_clock::now() + kWatchEndWait;
  for (size_t i = 0; i < ctx.hosts.size(); ++i) {
    if (!ended[i] || ctx.watches[i] == nullptr) continue;
    // A stream that broke before the end lost samples: say so rather than show a gap as calm.
    const absl::Status watched = ctx.watches[i]->WaitUntil(deadline);
    if (!watched.ok() && watched.code() != absl::StatusCode::kCancelled) {
      ctx.Locked([&] {
        ctx.inputs.not_observed.push_back(
            absl::StrCat("samples of host '", ctx.hosts[i].name,
                         "' may be incomplete: the sample stream ended with ", watched.message()));
      });
    }
    ctx.watches[i].reset();
  }
}

}  // namespace synq::controller

namespace synq::controller {

bool ExpectsFloodErrors(const Scenario& scenario, const std::string& flood) {
  const std::string errors = absl::StrCat("floods.", flood, ".errors");
  const std::string fate = absl::StrCat("floods.", flood, ".fates.error");
  for (const auto& e : scenario.expectations) {
    auto parsed = verdict::Expression::Parse(e.expression);
    if (!parsed.ok()) continue;  // the loader refused it already
    for (const auto& path : parsed->paths()) {
      if (path == errors || absl::StartsWith(path, errors + ".") || path == fate) return true;
    }
  }
  return false;
}

std::vector<RunFailure> FloodsThatOnlyFailed(const Scenario& scenario,
                                             const ::synq::result::v1::Run& run) {
  std::vector<RunFailure> failures;
  for (const auto& f : scenario.floods) {
    auto it = run.floods().find(f.name);
    if (it == run.floods().end()) continue;  // the host failed: reported already
    const ::synq::result::v1::Flood& r = it->second;
    uint64_t errors = 0;
    for (const auto& [name, n] : r.errors()) errors += n;
    // Connects refused, reset or timed out are measurements of the target; an attempt that ended
    // in an errno of its own (no route, no source address, forbidden) measured nothing.
    const uint64_t measured =
        static_cast<uint64_t>(r.established()) + r.reset() + r.refused() + r.timed_out();
    if (r.attempted() == 0 || errors == 0 || measured != 0) continue;
    if (ExpectsFloodErrors(scenario, f.name)) continue;
    std::vector<std::string> kinds;
    for (const auto& [name, n] : r.errors()) kinds.push_back(absl::StrCat(name, " ", n));
    std::sort(kinds.begin(), kinds.end());
    failures.push_back(
        {f.host, absl::StrCat("floods.", f.name, ": every attempt failed with a local error (",
                              absl::StrJoin(kinds, ", "), " of ", r.attempted(), " attempted to ",
                              r.target(),
                              "); nothing was measured. If this is the outcome under "
                              "test, say so with an expect: line on floods.",
                              f.name, ".errors")});
  }
  return failures;
}

}  // namespace synq::controller
