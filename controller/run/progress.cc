#include "controller/run/progress.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace synq::controller {

Progress::Progress(FILE* out, size_t total_runs, std::set<std::string> flooding_hosts, bool live)
    : out_(out), total_(total_runs), flooding_hosts_(std::move(flooding_hosts)), live_(live) {
  if (live_) {
    ticker_ = std::thread([this] {
      std::unique_lock<std::mutex> lock(mu_);
      while (!stop_) {
        cv_.wait_for(lock, std::chrono::milliseconds(250));
        if (!stop_ && in_run_) {
          lock.unlock();
          Redraw();
          lock.lock();
        }
      }
    });
  }
}

Progress::~Progress() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (ticker_.joinable()) ticker_.join();
}

std::string Progress::LiveLine(size_t index, size_t total, double elapsed_s, int64_t connects) {
  return absl::StrFormat("synq: run %d/%d  %.1f s  %d connects", index + 1, total, elapsed_s,
                         connects);
}

std::string Progress::RunLine(size_t index, size_t total, const std::string& params,
                              const synq::result::v1::Run& run) {
  uint64_t attempted = 0;
  uint64_t established = 0;
  for (const auto& [name, f] : run.floods()) {
    if (!f.group().empty() && f.members_size() == 0) continue;  // a group member: in its sum
    attempted += f.attempted();
    established += f.established();
  }
  if (run.has_search()) {  // the floods are the knee trial's; the search took longer
    const auto& s = run.search();
    return absl::StrFormat(
        "synq: run %d/%d%s%s search done in %.1f s: %s in %d trials%s", index + 1, total,
        params.empty() ? "" : " ", params, s.search_ms() / 1000.0,
        s.has_knee_rate() ? absl::StrCat("knee ", s.knee_rate(), "/s") : "no knee", s.trials_size(),
        run.errors().empty() ? "" : ", FAILED");
  }
  return absl::StrFormat("synq: run %d/%d%s%s done in %.1f s: %d attempted, %d established%s",
                         index + 1, total, params.empty() ? "" : " ", params,
                         run.duration_ms() / 1000.0, attempted, established,
                         run.errors().empty() ? "" : ", FAILED");
}

void Progress::BeginRun(size_t index, const std::string& params) {
  std::lock_guard<std::mutex> lock(mu_);
  index_ = index;
  in_run_ = true;
  run_began_ = std::chrono::steady_clock::now();
  connects_.clear();
  params_ = params;
}

void Progress::OnSample(const std::string& host, const v1::Sample& sample) {
  if (!flooding_hosts_.contains(host)) return;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& c : sample.counter_deltas()) {
    if (c.name() == "TcpActiveOpens") connects_[host] = c.value();
  }
}

void Progress::Redraw() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!in_run_) return;  // the run ended while the ticker waited for the lock
  int64_t connects = 0;
  for (const auto& [host, n] : connects_) connects += n;
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - run_began_).count();
  // \r and erase-to-end-of-line: one line, redrawn in place.
  absl::FPrintF(out_, "\r%s\033[K", LiveLine(index_, total_, elapsed, connects));
  std::fflush(out_);
}

void Progress::EndRun(const synq::result::v1::Run& run) {
  std::lock_guard<std::mutex> lock(mu_);
  in_run_ = false;
  absl::FPrintF(out_, "%s%s\n", live_ ? "\r\033[K" : "", RunLine(index_, total_, params_, run));
  std::fflush(out_);
}

}  // namespace synq::controller
