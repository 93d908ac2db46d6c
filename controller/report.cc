#include "controller/report.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace synq::controller {
namespace {

using json = nlohmann::json;

// The counters that explain handshake outcomes, in the order a reader wants them.
constexpr const char* kKeyCounters[] = {"TcpExtListenOverflows",
                                        "TcpExtListenDrops",
                                        "TcpExtTCPReqQFullDrop",
                                        "TcpExtTCPReqQFullDoCookies",
                                        "TcpExtSyncookiesSent",
                                        "TcpExtSyncookiesRecv",
                                        "TcpExtSyncookiesFailed",
                                        "TcpExtTCPSynRetrans",
                                        "TcpPassiveOpens",
                                        "TcpActiveOpens",
                                        "TcpAttemptFails",
                                        "TcpEstabResets",
                                        "TcpOutRsts",
                                        "TcpRetransSegs"};

std::string Scalar(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

}  // namespace

std::string RenderTable(const json& result) {
  std::string out;
  absl::StrAppend(&out, "scenario ", result.value("scenario", std::string("?")), "\n");
  const json runs = result.value("runs", json::array());
  for (const json& run : runs) {
    std::vector<std::string> params;
    const json run_params = run.value("params", json::object());
    for (const auto& [path, value] : run_params.items()) {
      params.push_back(absl::StrCat(path, "=", Scalar(value)));
    }
    absl::StrAppend(&out, "\nrun ", run.value("index", 0),
                    params.empty() ? "" : absl::StrCat("  ", absl::StrJoin(params, "  ")),
                    absl::StrFormat("  (start skew %.2f ms, latest start %.2f ms late)\n",
                                    run.value("start_skew_ms", 0.0),
                                    run.value("start_lateness_ms", 0.0)));
    const json floods = run.value("floods", json::object());
    if (!floods.empty()) {
      absl::StrAppend(
          &out, absl::StrFormat("  %-10s %-8s %6s %6s %6s %7s %7s %-28s %9s %9s %9s %9s\n", "flood",
                                "host", "tried", "estab", "reset", "refused", "timeout", "fates",
                                "p50 ms", "p90 ms", "p99 ms", "max ms"));
      for (const auto& [name, f] : floods.items()) {
        std::vector<std::string> fates;
        const json fate_counts = f.value("fates", json::object());
        for (const auto& [fate, n] : fate_counts.items()) {
          fates.push_back(absl::StrCat(fate, ":", n.get<int64_t>()));
        }
        std::vector<std::string> errors;
        const json error_counts = f.value("errors", json::object());
        for (const auto& [errno_name, n] : error_counts.items()) {
          errors.push_back(absl::StrCat(errno_name, ":", n.get<int64_t>()));
        }
        const json lat = f.value("connect_latency_ms", json::object());
        absl::StrAppend(
            &out, absl::StrFormat(
                      "  %-10s %-8s %6d %6d %6d %7d %7d %-28s %9.3f %9.3f %9.3f %9.3f\n", name,
                      f.value("host", std::string()), f.value("attempted", 0),
                      f.value("established", 0), f.value("reset", 0), f.value("refused", 0),
                      f.value("timed_out", 0), absl::StrJoin(fates, " "), lat.value("p50", 0.0),
                      lat.value("p90", 0.0), lat.value("p99", 0.0), lat.value("max", 0.0)));
        if (!errors.empty())
          absl::StrAppend(&out, "    errors: ", absl::StrJoin(errors, " "), "\n");
      }
    }
    const json listeners = run.value("listeners", json::object());
    if (!listeners.empty()) {
      absl::StrAppend(&out,
                      absl::StrFormat("  %-10s %-8s %-22s %8s %9s %9s %6s\n", "listener", "host",
                                      "address", "backlog", "effective", "accepted", "peak"));
      for (const auto& [name, l] : listeners.items()) {
        absl::StrAppend(
            &out, absl::StrFormat("  %-10s %-8s %-22s %8d %9d %9d %6d\n", name,
                                  l.value("host", std::string()), l.value("address", std::string()),
                                  l.value("backlog", 0), l.value("backlog_effective", 0),
                                  l.value("accepted", 0), l.value("accept_queue_peak", 0)));
      }
    }
    const json hosts = run.value("hosts", json::object());
    for (const auto& [host, h] : hosts.items()) {
      const json counters = h.value("counters", json::object());
      std::vector<std::string> moved;
      for (const char* name : kKeyCounters) {
        const int64_t v = counters.value(name, int64_t{0});
        if (v != 0) moved.push_back(absl::StrCat(name, "=", v));
      }
      const json events = h.value("drop_events", json::object());
      for (const auto& [name, n] : events.items()) {
        if (n.get<int64_t>() != 0) moved.push_back(absl::StrCat(name, "=", n.get<int64_t>()));
      }
      if (!moved.empty()) {
        absl::StrAppend(&out, "  ", host, ": ", absl::StrJoin(moved, " "), "\n");
      }
      const json packets = h.value("packets", json::object());
      for (const char* direction : {"to_server", "from_server"}) {
        if (!packets.contains(direction)) continue;
        const json& p = packets[direction];
        absl::StrAppend(&out,
                        absl::StrFormat("  %s packets %-11s syn %d (retx %d)  synack %d (retx %d)  "
                                        "ack %d  rst %d  data %d\n",
                                        host, direction, p.value("syn", 0),
                                        p.value("syn_retransmit", 0), p.value("synack", 0),
                                        p.value("synack_retransmit", 0), p.value("pure_ack", 0),
                                        p.value("rst", 0), p.value("data", 0)));
      }
      if (packets.contains("error")) {
        absl::StrAppend(&out, "  ", host, " packets: ", packets["error"].get<std::string>(), "\n");
      }
    }
    const json errors = run.value("errors", json::array());
    for (const json& e : errors) {
      absl::StrAppend(&out, "  ERROR ", e.get<std::string>(), "\n");
    }
  }
  return out;
}

}  // namespace synq::controller
