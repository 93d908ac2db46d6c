#include "controller/result/table.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "controller/result/counter_catalog.h"
#include "controller/result/flood_text.h"
#include "controller/result/format.h"
#include "controller/search/search_render.h"

namespace synq::controller::result {
namespace {

namespace rv1 = ::synq::result::v1;

std::string FatesText(const rv1::Fates& f) {
  std::vector<std::string> parts;
  auto add = [&](const char* name, uint32_t n) {
    if (n != 0) parts.push_back(absl::StrCat(name, ":", n));
  };
  add("accepted", f.accepted());
  add("queued", f.queued());
  add("syn_recv", f.syn_recv());
  add("unknown_to_server", f.unknown_to_server());
  add("established_unjoined", f.established_unjoined());
  add("reset", f.reset());
  add("refused", f.refused());
  add("timed_out", f.timed_out());
  add("error", f.error());
  return absl::StrJoin(parts, " ");
}

std::string PacketText(const rv1::PacketCounts& p) {
  return absl::StrFormat("syn %d (retx %d)  synack %d (retx %d)  ack %d  rst %d  data %d", p.syn(),
                         p.syn_retransmit(), p.synack(), p.synack_retransmit(), p.pure_ack(),
                         p.rst(), p.data());
}

}  // namespace

std::string RenderRunTable(const rv1::Run& run) {
  std::string out;
  const std::string params = ParamsText(run, "  ");
  std::string timing;
  if (run.has_start_skew_ms()) {
    timing = absl::StrFormat("  (start skew %.2f ms, latest start %.2f ms late)",
                             run.start_skew_ms(), run.start_lateness_ms());
  } else {
    timing = "  (start skew not_observed)";
  }
  absl::StrAppend(&out, "\nrun ", run.index(), params.empty() ? "" : absl::StrCat("  ", params),
                  timing, "\n");
  absl::StrAppend(&out, search::RenderSearchTable(run));  // the floods below are the knee trial's
  std::map<std::string, const rv1::Flood*> floods;
  for (const auto& [name, f] : run.floods()) floods[name] = &f;
  if (!floods.empty()) {
    absl::StrAppend(
        &out, absl::StrFormat("  %-10s %-8s %6s %6s %6s %7s %7s %-28s %9s %9s %9s %9s\n", "flood",
                              "host", "tried", "estab", "reset", "refused", "timeout", "fates",
                              "p50 ms", "p90 ms", "p99 ms", "max ms"));
    for (const auto& [name, f] : floods) {
      const rv1::LatencySummary& lat = f->connect_latency_ms();
      // A group's merged row shows its member count; its member rows ("f1@clients-1") follow it.
      const std::string host =
          f->members_size() > 0 ? absl::StrCat(f->host(), "[", f->members_size(), "]") : f->host();
      absl::StrAppend(
          &out, absl::StrFormat("  %-10s %-8s %6d %6d %6d %7d %7d %-28s %9.3f %9.3f %9.3f %9.3f\n",
                                name, host, f->attempted(), f->established(), f->reset(),
                                f->refused(), f->timed_out(), FatesText(f->fates()), lat.p50(),
                                lat.p90(), lat.p99(), lat.max()));
      if (!f->server_observed()) {
        absl::StrAppend(&out,
                        "    fates: server side not_observed (no synq or observed listener"
                        " with an agent there)\n");
      }
      if (!f->errors().empty()) {
        std::map<std::string, uint32_t> errors(f->errors().begin(), f->errors().end());
        std::vector<std::string> parts;
        for (const auto& [errno_name, n] : errors)
          parts.push_back(absl::StrCat(errno_name, ":", n));
        absl::StrAppend(&out, "    errors: ", absl::StrJoin(parts, " "), "\n");
      }
      absl::StrAppend(&out, SustainedFloodText(*f));
      if (f->members_size() > 0) {
        absl::StrAppend(&out, "    group ", f->group(), ": the sum of ", f->members_size(),
                        " member rows (", name, "@", f->group(), "-N)\n");
      }
    }
  }
  std::map<std::string, const rv1::Listener*> listeners;
  for (const auto& [name, l] : run.listeners()) listeners[name] = &l;
  if (!listeners.empty()) {
    absl::StrAppend(
        &out, absl::StrFormat("  %-10s %-8s %-22s %8s %9s %9s %6s\n", "listener", "host", "address",
                              "backlog", "effective", "accepted", "peak"));
    for (const auto& [name, l] : listeners) {
      absl::StrAppend(&out, absl::StrFormat("  %-10s %-8s %-22s %8d %9d %9d %6d\n", name, l->host(),
                                            l->address(), l->backlog(), l->backlog_effective(),
                                            l->accepted(), l->accept_queue_peak()));
      if (l->observed()) {
        absl::StrAppend(&out, "    observed: owned by ",
                        l->owner().empty() ? "a process not found" : l->owner(),
                        "; backlog not_observed, accepted = sockets it took seen at collection\n");
      }
    }
  }
  std::map<std::string, const rv1::Host*> hosts;
  for (const auto& [name, h] : run.hosts()) hosts[name] = &h;
  for (const auto& [name, h] : hosts) {
    std::vector<std::string> moved;
    for (const auto& [counter, compared] : kHandshakeCounters) {
      auto it = h->counters().find(counter);
      if (it != h->counters().end() && it->second != 0) {
        moved.push_back(absl::StrCat(counter, "=", it->second));
      }
    }
    std::map<std::string, double> events(h->drop_events().begin(), h->drop_events().end());
    for (const auto& [event, n] : events) {
      if (n != 0) moved.push_back(absl::StrCat(event, "=", n));
    }
    if (!moved.empty()) absl::StrAppend(&out, "  ", name, ": ", absl::StrJoin(moved, " "), "\n");
    if (h->has_packets()) {
      const rv1::Packets& p = h->packets();
      if (!p.error().empty()) {
        absl::StrAppend(&out, "  ", name, " packets: ", p.error(), "\n");
      } else {
        absl::StrAppend(&out, absl::StrFormat("  %s packets %-11s %s\n", name, "to_server",
                                              PacketText(p.to_server())));
        absl::StrAppend(&out, absl::StrFormat("  %s packets %-11s %s\n", name, "from_server",
                                              PacketText(p.from_server())));
      }
    }
  }
  for (const auto& e : run.errors()) absl::StrAppend(&out, "  ERROR ", e, "\n");
  return out;
}

std::string RenderTable(const rv1::Result& result) {
  std::string out = absl::StrCat("scenario ", result.scenario(), "\n");
  for (const auto& run : result.runs()) absl::StrAppend(&out, RenderRunTable(run));
  return out;
}

}  // namespace synq::controller::result
