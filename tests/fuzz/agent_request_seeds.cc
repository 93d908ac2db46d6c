// Writes seed inputs for agent_requests_fuzzer from scenario files: for each scenario, the
// requests a run of it sends (BeginRun, ApplySettings, ApplyShaping, StartListener,
// ObserveListener, StartFloods), each as one file: a byte naming the message type (the fuzzer's
// switch) and the message's wire encoding. Usage: agent_request_seeds OUT_DIR SCENARIO.yaml...
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include "controller/scenario_loader.h"
#include "proto/proto_enums.h"
#include "proto/proto_time.h"
#include "synq/agent/v1/agent.pb.h"

namespace {

namespace v1 = ::synq::agent::v1;
using namespace synq;
using namespace synq::controller;

int written = 0;

void Write(const std::string& dir, const std::string& stem, char kind,
           const google::protobuf::Message& m) {
  std::ofstream out(dir + "/" + stem + "-" + std::to_string(written++), std::ios::binary);
  out.put(kind);
  m.SerializeToOstream(&out);
}

v1::CloseMode Close(CloseMode mode) {
  switch (mode) {
    case CloseMode::kRst:
      return v1::CLOSE_MODE_RST;
    case CloseMode::kFin:
      return v1::CLOSE_MODE_FIN;
    case CloseMode::kKeep:
      break;
  }
  return v1::CLOSE_MODE_KEEP;
}

void Seeds(const std::string& dir, const std::string& stem, const Scenario& s) {
  v1::BeginRunRequest begin;
  begin.set_run_id(s.name);
  proto::ToProto(s.sample_interval, begin.mutable_sample_interval());
  proto::ToProto(std::chrono::minutes(10), begin.mutable_lease());
  Write(dir, stem, 0, begin);
  for (const auto& [host, keys] : s.settings) {
    v1::ApplySettingsRequest r;
    for (const auto& [key, value] : keys) {
      v1::Setting* setting = r.add_settings();
      setting->set_key(key);
      setting->set_value(value);
    }
    Write(dir, stem, 1, r);
  }
  if (!s.shaping.empty()) {
    v1::ApplyShapingRequest r;
    for (const ShapingDef& d : s.shaping) {
      v1::Shaping* out = r.add_shapings();
      out->set_interface("eth0");
      out->set_backend(proto::ToProto(d.backend));
      proto::ToProto(d.delay, out->mutable_delay());
      proto::ToProto(d.jitter, out->mutable_jitter());
      out->set_loss_percent(d.loss_percent);
      out->set_rate_bits_per_second(d.rate_bits_per_second);
      if (!d.to.empty()) out->set_destination("198.18.0.3/32");
    }
    Write(dir, stem, 2, r);
  }
  for (const ListenerDef& l : s.listeners) {
    v1::StartListenerRequest r;
    v1::ListenerSpec* spec = r.mutable_listener();
    spec->set_name(l.name);
    spec->set_address(l.address);
    spec->set_port(static_cast<uint32_t>(l.port));
    spec->set_backlog(static_cast<int32_t>(l.backlog));
    spec->set_accept(proto::ToProto(l.accept));
    proto::ToProto(l.accept_interval, spec->mutable_accept_interval());
    spec->set_accept_rate(l.accept_rate);
    spec->set_close_on_accept(l.close_on_accept);
    for (const ListenerDef::Pause& p : l.pauses) {
      v1::Pause* pause = spec->add_pauses();
      proto::ToProto(p.at, pause->mutable_at());
      proto::ToProto(p.length, pause->mutable_length());
    }
    Write(dir, stem, 3, r);
  }
  for (const ObserveDef& o : s.observes) {
    v1::ObserveListenerRequest r;
    r.set_name(o.name);
    r.set_port(static_cast<uint32_t>(o.port));
    r.set_address(o.address);
    Write(dir, stem, 4, r);
  }
  if (!s.floods.empty()) {
    v1::StartFloodsRequest r;
    proto::ToProto(std::chrono::system_clock::now(), r.mutable_start_at());
    for (const FloodDef& f : s.floods) {
      v1::FloodSpec* spec = r.add_floods();
      spec->set_name(f.name);
      spec->set_target("198.18.0.2:8080");
      spec->set_connections(static_cast<uint64_t>(f.connections));
      spec->set_concurrency(static_cast<uint32_t>(f.concurrency));
      proto::ToProto(f.connect_timeout, spec->mutable_connect_timeout());
      proto::ToProto(f.start_after, spec->mutable_start_after());
      proto::ToProto(f.hold, spec->mutable_hold());
      spec->set_payload(f.payload.str());
      proto::ToProto(f.duration, spec->mutable_duration());
      if (f.rate_kind == RateKind::kRamp) {
        spec->mutable_ramp()->set_from(f.ramp_from);
        spec->mutable_ramp()->set_to(f.ramp_to);
        proto::ToProto(f.ramp_over, spec->mutable_ramp()->mutable_over());
      } else if (f.rate_kind == RateKind::kSteps) {
        for (double step : f.steps) spec->mutable_steps()->add_rates(step);
        proto::ToProto(f.steps_each, spec->mutable_steps()->mutable_each());
      } else {
        spec->set_rate(f.rate);
      }
      proto::ToProto(f.lifetime, spec->mutable_lifetime());
      spec->set_close(Close(f.close));
      spec->set_threads(static_cast<uint32_t>(f.threads));
      for (const std::string& source : f.sources) spec->add_sources(source);
    }
    Write(dir, stem, 5, r);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s OUT_DIR SCENARIO.yaml...\n", argv[0]);
    return 2;
  }
  for (int i = 2; i < argc; ++i) {
    LoadResult result = LoadScenarioFile(argv[i]);
    if (!result.ok()) {
      std::fprintf(stderr, "%s: %s\n", argv[i], result.errors.front().ToString().c_str());
      return 1;
    }
    std::string stem = argv[i];
    stem = stem.substr(stem.find_last_of('/') + 1);
    Seeds(argv[1], stem, result.scenario);
  }
  std::printf("%d agent request seeds in %s\n", written, argv[1]);
  return 0;
}
