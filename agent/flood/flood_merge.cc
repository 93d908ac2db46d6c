#include "agent/flood/flood_merge.h"

#include <algorithm>
#include <map>
#include <memory>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace synq::agent {
namespace {

absl::Status MergeHistogram(common::Histogram& into, const common::Histogram& from,
                            const std::string& where) {
  if (from.count() == 0) return absl::OkStatus();
  if (into.count() == 0 && into.sub_bucket_bits() != from.sub_bucket_bits()) {
    into = common::Histogram(from.sub_bucket_bits());
  }
  if (!into.Merge(from)) {
    return absl::FailedPreconditionError(absl::StrCat(where, ": cannot merge histograms of ",
                                                      into.sub_bucket_bits(), " and ",
                                                      from.sub_bucket_bits(), " sub-bucket bits"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<FloodResult> MergeFloodResults(std::vector<FloodResult> parts, PeakMerge peaks) {
  FloodResult out;
  if (parts.empty()) return out;
  out.name = parts.front().name;
  out.started_at = parts.front().started_at;
  out.threads = 0;
  out.workers = 0;
  std::map<uint32_t, FloodSecond> seconds;
  std::vector<std::shared_ptr<void>> keep;
  for (FloodResult& p : parts) {
    out.attempted += p.attempted;
    out.established += p.established;
    out.reset += p.reset;
    out.refused += p.refused;
    out.timed_out += p.timed_out;
    for (const auto& [name, n] : p.errors) out.errors[name] += n;
    if (absl::Status s = MergeHistogram(out.connect_latency_us, p.connect_latency_us,
                                        absl::StrCat("flood ", out.name, " connect latency"));
        !s.ok()) {
      return s;
    }
    std::move(p.connections.begin(), p.connections.end(), std::back_inserter(out.connections));
    out.started_at = std::min(out.started_at, p.started_at);
    if (p.held_sockets != nullptr) {
      std::move(p.held_sockets->begin(), p.held_sockets->end(),
                std::back_inserter(*out.held_sockets));
      p.held_sockets->clear();
    }
    out.answered += p.answered;
    out.launches_late += p.launches_late;
    out.launches_dropped += p.launches_dropped;
    out.launch_lag_max = std::max(out.launch_lag_max, p.launch_lag_max);
    out.closed += p.closed;
    // The index is the second (flood_spec.h); FloodSecond::second is not trusted over it.
    for (uint32_t second = 0; second < p.series.size(); ++second) {
      FloodSecond& s = p.series[second];
      auto [it, fresh] = seconds.try_emplace(second);
      FloodSecond& m = it->second;
      if (fresh) m.second = second;
      m.launched += s.launched;
      m.established += s.established;
      m.reset += s.reset;
      m.refused += s.refused;
      m.timed_out += s.timed_out;
      m.errors += s.errors;
      m.late += s.late;
      m.dropped += s.dropped;
      m.answered += s.answered;
      if (absl::Status st = MergeHistogram(m.connect_latency_us, s.connect_latency_us,
                                           absl::StrCat("flood ", out.name, " second ", second));
          !st.ok()) {
        return st;
      }
    }
    std::move(p.held.begin(), p.held.end(), std::back_inserter(out.held));
    out.reset_after_us.insert(out.reset_after_us.end(), p.reset_after_us.begin(),
                              p.reset_after_us.end());
    out.timed_out_after_us.insert(out.timed_out_after_us.end(), p.timed_out_after_us.begin(),
                                  p.timed_out_after_us.end());
    out.outcome_samples_dropped += p.outcome_samples_dropped;
    out.threads += p.threads;
    out.workers += p.workers;
    // The engines that ran the shares, in first-seen order ("io_uring+epoll" when mixed).
    if (!p.engine.empty() &&
        !absl::StrContains(absl::StrCat("+", out.engine, "+"), absl::StrCat("+", p.engine, "+"))) {
      out.engine = out.engine.empty() ? p.engine : absl::StrCat(out.engine, "+", p.engine);
    }
    std::move(p.worker_errors.begin(), p.worker_errors.end(),
              std::back_inserter(out.worker_errors));
    for (const std::string& s : p.sources) {
      if (std::find(out.sources.begin(), out.sources.end(), s) == out.sources.end()) {
        out.sources.push_back(s);
      }
    }
    out.records_dropped += p.records_dropped;
    out.open_peak = peaks == PeakMerge::kMax ? std::max(out.open_peak, p.open_peak)
                                             : out.open_peak + p.open_peak;
    if (p.keepalive != nullptr) keep.push_back(std::move(p.keepalive));
  }
  // The series is indexed by second: fill seconds no share saw so the index stays the second.
  if (!seconds.empty()) {
    out.series.resize(seconds.rbegin()->first + 1);
    for (uint32_t i = 0; i < out.series.size(); ++i) out.series[i].second = i;
    for (auto& [second, s] : seconds) out.series[second] = std::move(s);
  }
  if (keep.size() == 1) {
    out.keepalive = std::move(keep.front());
  } else if (!keep.empty()) {
    out.keepalive = std::make_shared<std::vector<std::shared_ptr<void>>>(std::move(keep));
  }
  return out;
}

}  // namespace synq::agent
