// Progress of `synq run` on stderr. On a terminal: one live line (run i/N, elapsed, connects so
// far from the Watch samples' TcpActiveOpens deltas of the flooding hosts), replaced by the run's
// summary line when it ends. Otherwise (CI logs): only the summary line, one per run.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "controller/agent_client.h"
#include "synq/result/v1/result.pb.h"

namespace synq::controller {

class Progress {
 public:
  // `flooding_hosts`: whose active opens count as connects. `live`: redraw a line (a terminal).
  Progress(FILE* out, size_t total_runs, std::set<std::string> flooding_hosts, bool live);
  ~Progress();

  void BeginRun(size_t index, const std::string& params);
  // Thread-safe; called from Watch stream threads.
  void OnSample(const std::string& host, const v1::Sample& sample);
  void EndRun(const synq::result::v1::Run& run);

  // The live line or the per-run line, for a given state (pure; tested).
  static std::string LiveLine(size_t index, size_t total, double elapsed_s, int64_t connects);
  static std::string RunLine(size_t index, size_t total, const std::string& params,
                             const synq::result::v1::Run& run);

 private:
  void Redraw();

  FILE* out_;
  const size_t total_;
  const std::set<std::string> flooding_hosts_;
  const bool live_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool in_run_ = false;
  size_t index_ = 0;
  std::string params_;
  std::chrono::steady_clock::time_point run_began_;
  std::map<std::string, int64_t> connects_;  // host -> TcpActiveOpens delta
  std::thread ticker_;
};

}  // namespace synq::controller
