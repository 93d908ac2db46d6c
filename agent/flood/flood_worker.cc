#include "agent/flood/flood_worker.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/flood/flood_engine.h"
#include "agent/flood/flood_merge.h"
#include "agent/flood/flood_proto.h"
#include "agent/flood/flood_runner.h"
#include "common/command.h"
#include "common/unique_fd.h"
#include "proto/proto_time.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"
#include "synq/agent/v1/agent.pb.h"

namespace synq::agent {
namespace {

namespace v1 = ::synq::agent::v1;
using Clock = std::chrono::steady_clock;

constexpr uint32_t kRequestMagic = 0x32575153;  // "SQW2" (adds the engine)
constexpr int kWorkerResultFd = 3;
// Larger than any reply a flood share produces; a length beyond it is garbage.
constexpr uint32_t kMaxMessage = 1u << 30;

// ---- Little-endian framing --------------------------------------------------------------

class Writer {
 public:
  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U16(uint16_t v) { Raw(&v, sizeof(v)); }
  void U32(uint32_t v) { Raw(&v, sizeof(v)); }
  void U64(uint64_t v) { Raw(&v, sizeof(v)); }
  void Bytes(const std::string& s) {
    U32(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  std::string& out() { return out_; }

 private:
  void Raw(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  std::string out_;
};

class Reader {
 public:
  explicit Reader(const std::string& in) : in_(in) {}
  bool U8(uint8_t& v) { return Raw(&v, sizeof(v)); }
  bool U16(uint16_t& v) { return Raw(&v, sizeof(v)); }
  bool U32(uint32_t& v) { return Raw(&v, sizeof(v)); }
  bool U64(uint64_t& v) { return Raw(&v, sizeof(v)); }
  bool Bytes(std::string& s) {
    uint32_t n = 0;
    if (!U32(n) || n > in_.size() - pos_) return false;
    s.assign(in_, pos_, n);
    pos_ += n;
    return true;
  }
  bool done() const { return pos_ == in_.size(); }

 private:
  bool Raw(void* p, size_t n) {
    if (in_.size() - pos_ < n) return false;
    std::memcpy(p, in_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  const std::string& in_;
  size_t pos_ = 0;
};

bool WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

bool ReadExactly(int fd, void* buf, size_t len) {
  size_t done = 0;
  while (done < len) {
    const ssize_t n = ::read(fd, static_cast<char*>(buf) + done, len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// ---- FloodSpec -> v1::FloodSpec (flood_proto converts the other way and results both ways) --

void SpecToProto(const FloodSpec& s, v1::FloodSpec* out) {
  out->set_name(s.name);
  out->set_target(s.target.ToString());
  out->set_connections(s.connections);
  out->set_concurrency(s.concurrency);
  proto::ToProto(s.connect_timeout, out->mutable_connect_timeout());
  proto::ToProto(s.start_after, out->mutable_start_after());
  proto::ToProto(s.hold, out->mutable_hold());
  out->set_payload(s.payload);
  out->set_source(s.source);
  if (s.duration.count() > 0) proto::ToProto(s.duration, out->mutable_duration());
  switch (s.profile.kind) {
    case RateProfile::Kind::kRamp:
      out->mutable_ramp()->set_from(s.profile.from);
      out->mutable_ramp()->set_to(s.profile.to);
      proto::ToProto(s.profile.over, out->mutable_ramp()->mutable_over());
      break;
    case RateProfile::Kind::kSteps:
      for (double r : s.profile.steps) out->mutable_steps()->add_rates(r);
      proto::ToProto(s.profile.each, out->mutable_steps()->mutable_each());
      break;
    case RateProfile::Kind::kConstant:
      out->set_rate(s.profile.rate > 0 ? s.profile.rate : s.rate);
      break;
  }
  if (s.lifetime.count() > 0) proto::ToProto(s.lifetime, out->mutable_lifetime());
  out->set_close(ToProto(s.close));
  out->set_threads(s.threads);
  for (const auto& a : s.sources) out->add_sources(a);
  out->set_keep_records(s.keep_records);
  out->set_max_records(s.max_records);
}

// ---- Spawning ---------------------------------------------------------------------------

// PR_SET_PDEATHSIG fires when the *thread* that created the child exits, not the process. Flood
// threads end long before the workers must, so every worker is spawned by this one thread,
// which lives as long as the agent.
class SpawnThread {
 public:
  static SpawnThread& Get() {
    static SpawnThread* instance = new SpawnThread();  // never destroyed: outlives the workers
    return *instance;
  }
  template <typename F>
  auto Run(F f) -> decltype(f()) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.emplace_back([&task] { task(); });
    }
    cv_.notify_one();
    return result.get();
  }

 private:
  SpawnThread() {
    std::thread([this] {
      while (true) {
        std::function<void()> task;
        {
          std::unique_lock<std::mutex> lock(mu_);
          cv_.wait(lock, [this] { return !tasks_.empty(); });
          task = std::move(tasks_.front());
          tasks_.pop_front();
        }
        task();
      }
    }).detach();
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
};

// A pipe whose ends are above the descriptors the child's file actions target (0-3) and
// close-on-exec, so no other child inherits them.
absl::Status MakePipe(common::UniqueFd& read_end, common::UniqueFd& write_end) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return absl::ErrnoToStatus(errno, "pipe2");
  common::UniqueFd r(fds[0]), w(fds[1]);
  read_end.Reset(fcntl(r.get(), F_DUPFD_CLOEXEC, 10));
  write_end.Reset(fcntl(w.get(), F_DUPFD_CLOEXEC, 10));
  if (!read_end || !write_end) return absl::ErrnoToStatus(errno, "fcntl(F_DUPFD_CLOEXEC)");
  return absl::OkStatus();
}

absl::StatusOr<pid_t> Spawn(const std::string& binary, int child_stdin, int child_result) {
  common::SpawnOptions options;
  options.fds = {{0, child_stdin}, {1, common::kDevNull}, {kWorkerResultFd, child_result}};
  // Held sockets of floods running in the agent must not leak into workers.
  options.close_from = kWorkerResultFd + 1;
  options.clear_signal_mask = false;  // as the agent's threads have it (SIGTERM for sigwait)
  const std::vector<std::string> argv = {binary, "--flood-worker", "--parent",
                                         std::to_string(getpid())};
  return SpawnThread::Get().Run([&] { return common::Spawn(argv, options); });
}

std::string DescribeExit(int status) {
  if (WIFSIGNALED(status)) {
    return absl::StrCat("killed by signal ", WTERMSIG(status), " (", strsignal(WTERMSIG(status)),
                        ")");
  }
  if (WIFEXITED(status)) return absl::StrCat("exited with status ", WEXITSTATUS(status));
  return absl::StrCat("ended (wait status ", status, ")");
}

// Waits up to `budget` for `pid`; the exit description, or "" if it is still running.
std::string ReapWithin(pid_t pid, std::chrono::milliseconds budget) {
  const auto deadline = Clock::now() + budget;
  while (true) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return DescribeExit(status);
    if (r < 0) return absl::StrCat("lost (waitpid: ", strerror(errno), ")");
    if (Clock::now() >= deadline) return "";
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

struct Child {
  pid_t pid = -1;
  bool reaped = false;
  common::UniqueFd control;  // the worker's stdin
  common::UniqueFd replies;  // the worker's fd 3
  std::string buffer;
  bool finished = false;  // reply parsed, or failed
};

// Owns the workers of one flood: dropping it closes their stdin (they close their sockets and
// exit) and reaps them, killing any that take longer than a few seconds to go.
class WorkerGroup {
 public:
  std::vector<Child> children;
  ~WorkerGroup() {
    for (Child& c : children) c.control.Reset();
    for (Child& c : children) {
      if (c.reaped || c.pid <= 0) continue;
      if (ReapWithin(c.pid, std::chrono::seconds(10)).empty()) {
        kill(c.pid, SIGKILL);
        waitpid(c.pid, nullptr, 0);
      }
    }
  }
};

std::string EncodeRequest(const FloodSpec& share, uint32_t index, uint32_t count, uint32_t threads,
                          std::chrono::system_clock::time_point run_start) {
  v1::FloodSpec proto;
  SpecToProto(share, &proto);
  Writer w;
  w.U32(kRequestMagic);
  w.U64(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(run_start.time_since_epoch()).count()));
  w.U32(index);
  w.U32(count);
  w.U32(threads);
  w.U32(share.schedule_stride);
  w.U32(share.schedule_offset);
  w.U32(share.concurrency);
  w.U64(share.max_records);
  // Workers run the engine this agent chose (they need not probe io_uring again).
  const FloodEngine engine =
      share.engine == FloodEngine::kAuto ? ProcessFloodEngine().engine : share.engine;
  w.U8(static_cast<uint8_t>(engine));
  w.U32(static_cast<uint32_t>(share.source_ports.size()));
  for (const SourcePorts& p : share.source_ports) {
    w.Bytes(p.address.HostString());
    w.U32(p.stride);
    w.U32(p.offset);
    w.U32(static_cast<uint32_t>(p.ranges.size()));
    for (const PortRange& r : p.ranges) {
      w.U16(r.first);
      w.U16(r.last);
    }
  }
  w.Bytes(proto.SerializeAsString());
  Writer framed;
  framed.Bytes(w.out());
  return framed.out();
}

struct WorkerRequest {
  FloodSpec share;
  uint32_t index = 0, count = 0, threads = 1;
  std::chrono::system_clock::time_point run_start;
};

absl::StatusOr<WorkerRequest> DecodeRequest(const std::string& body) {
  Reader r(body);
  WorkerRequest out;
  uint32_t magic = 0, n = 0;
  uint64_t start_ns = 0;
  uint32_t stride = 0, offset = 0, concurrency = 0;
  uint64_t max_records = 0;
  uint8_t engine = 0;
  if (!r.U32(magic) || magic != kRequestMagic) return absl::InvalidArgumentError("bad magic");
  if (!r.U64(start_ns) || !r.U32(out.index) || !r.U32(out.count) || !r.U32(out.threads) ||
      !r.U32(stride) || !r.U32(offset) || !r.U32(concurrency) || !r.U64(max_records) ||
      !r.U8(engine) || !r.U32(n)) {
    return absl::InvalidArgumentError("truncated header");
  }
  if (engine != static_cast<uint8_t>(FloodEngine::kIoUring) &&
      engine != static_cast<uint8_t>(FloodEngine::kEpoll)) {
    return absl::InvalidArgumentError(
        absl::StrCat("engine ", int{engine}, " is not io_uring or epoll"));
  }
  std::vector<SourcePorts> ports;
  for (uint32_t i = 0; i < n; ++i) {
    std::string host;
    SourcePorts p;
    uint32_t ranges = 0;
    if (!r.Bytes(host) || !r.U32(p.stride) || !r.U32(p.offset) || !r.U32(ranges)) {
      return absl::InvalidArgumentError("truncated source ports");
    }
    auto address = common::ParseHostAddress(host, 0);
    if (!address.ok()) return address.status();
    p.address = *address;
    for (uint32_t j = 0; j < ranges; ++j) {
      PortRange range;
      if (!r.U16(range.first) || !r.U16(range.last)) {
        return absl::InvalidArgumentError("truncated port ranges");
      }
      p.ranges.push_back(range);
    }
    ports.push_back(std::move(p));
  }
  std::string spec_bytes;
  v1::FloodSpec proto;
  if (!r.Bytes(spec_bytes) || !r.done() || !proto.ParseFromString(spec_bytes)) {
    return absl::InvalidArgumentError("bad FloodSpec");
  }
  auto spec = FromProto(proto);
  if (!spec.ok()) return spec.status();
  out.share = *std::move(spec);
  out.share.schedule_stride = stride;
  out.share.schedule_offset = offset;
  out.share.concurrency = concurrency;
  out.share.max_records = max_records;
  out.share.engine = static_cast<FloodEngine>(engine);
  out.share.source_ports = std::move(ports);
  out.run_start = std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::nanoseconds(start_ns)));
  return out;
}

// Parses a complete reply from `buffer`: nullopt while incomplete.
std::optional<absl::StatusOr<FloodResult>> ParseReply(const std::string& buffer) {
  if (buffer.size() < 5) return std::nullopt;
  uint32_t len = 0;
  std::memcpy(&len, buffer.data() + 1, 4);
  const char kind = buffer[0];
  if ((kind != 'R' && kind != 'E') || len > kMaxMessage) {
    return absl::StatusOr<FloodResult>(absl::DataLossError("sent garbage (bad reply header)"));
  }
  if (buffer.size() < 5 + static_cast<size_t>(len)) return std::nullopt;
  const std::string body = buffer.substr(5, len);
  if (kind == 'E') return absl::StatusOr<FloodResult>(absl::InternalError(body));
  v1::FloodResult proto;
  if (!proto.ParseFromString(body)) {
    return absl::StatusOr<FloodResult>(absl::DataLossError("sent garbage (unparseable result)"));
  }
  absl::StatusOr<FloodResult> result = FromProto(proto);
  if (!result.ok()) {
    return absl::StatusOr<FloodResult>(
        absl::DataLossError(absl::StrCat("sent garbage (", result.status().message(), ")")));
  }
  return result;
}

}  // namespace

absl::StatusOr<FloodResult> RunFloodWorkers(const FloodSpec& spec, uint32_t workers,
                                            uint32_t threads, uint64_t attempts,
                                            std::chrono::system_clock::time_point run_start,
                                            const std::atomic<bool>& stop,
                                            const std::string& worker_binary) {
  auto group = std::make_shared<WorkerGroup>();
  group->children.resize(workers);
  std::vector<FloodResult> parts;
  std::vector<std::string> errors;
  auto share_text = [&](uint32_t w) {
    const FloodSpec share = ShareOf(spec, workers, w);
    return absl::StrCat("its share (attempts k with k % ", share.schedule_stride,
                        " == ", share.schedule_offset, ", ",
                        AttemptsOfShare(attempts, share.schedule_stride, share.schedule_offset),
                        " of ", attempts, ") is not observed");
  };
  for (uint32_t w = 0; w < workers; ++w) {
    Child& c = group->children[w];
    common::UniqueFd child_stdin, child_result;
    absl::Status s = MakePipe(child_stdin, c.control);
    if (s.ok()) s = MakePipe(c.replies, child_result);
    absl::StatusOr<pid_t> pid = s.ok() ? Spawn(worker_binary, child_stdin.get(), child_result.get())
                                       : absl::StatusOr<pid_t>(s);
    if (!pid.ok()) {
      errors.push_back(absl::StrCat("worker ", w + 1, " of ", workers, " could not start: ",
                                    pid.status().message(), "; ", share_text(w)));
      c.finished = c.reaped = true;
      continue;
    }
    c.pid = *pid;
    // The worker may die before reading; a failed write then shows as its exit below.
    WriteAll(c.control.get(),
             EncodeRequest(ShareOf(spec, workers, w), w, workers, threads, run_start));
  }
  spdlog::info("flood {}: {} worker processes of {} ring(s) each started", spec.name, workers,
               threads);

  bool stop_sent = false;
  while (true) {
    std::vector<pollfd> fds;
    std::vector<uint32_t> who;
    for (uint32_t w = 0; w < workers; ++w) {
      if (group->children[w].finished) continue;
      fds.push_back({group->children[w].replies.get(), POLLIN, 0});
      who.push_back(w);
    }
    if (fds.empty()) break;
    if (stop.load() && !stop_sent) {
      for (Child& c : group->children) {
        if (!c.finished && c.control) WriteAll(c.control.get(), "S");
      }
      stop_sent = true;
    }
    const int n = poll(fds.data(), fds.size(), 50);
    if (n < 0 && errno != EINTR) return absl::ErrnoToStatus(errno, "poll on flood workers");
    for (size_t i = 0; i < fds.size() && n > 0; ++i) {
      if (fds[i].revents == 0) continue;
      const uint32_t w = who[i];
      Child& c = group->children[w];
      char buf[65536];
      const ssize_t got = ::read(c.replies.get(), buf, sizeof(buf));
      if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (got > 0) c.buffer.append(buf, static_cast<size_t>(got));
      std::optional<absl::StatusOr<FloodResult>> reply = ParseReply(c.buffer);
      if (reply.has_value()) {
        c.finished = true;
        c.replies.Reset();
        if (reply->ok()) {
          parts.push_back(**std::move(reply));
        } else {
          std::string how = ReapWithin(c.pid, std::chrono::milliseconds(500));
          c.reaped = !how.empty();
          errors.push_back(absl::StrCat("worker ", w + 1, " of ", workers, " (pid ", c.pid, ") ",
                                        reply->status().message(), how.empty() ? "" : "; ", how,
                                        "; ", share_text(w)));
          c.buffer.clear();
        }
        continue;
      }
      if (got == 0 || got < 0) {  // EOF before a whole reply: the worker is gone
        c.finished = true;
        c.replies.Reset();
        std::string how = ReapWithin(c.pid, std::chrono::seconds(5));
        c.reaped = !how.empty();
        if (how.empty()) how = "closed its reply pipe";
        errors.push_back(absl::StrCat(
            "worker ", w + 1, " of ", workers, " (pid ", c.pid, ") ", how, " after reporting ",
            c.buffer.empty() ? std::string("nothing")
                             : absl::StrCat(c.buffer.size(), " bytes of an incomplete reply"),
            "; ", share_text(w)));
      }
    }
  }
  for (const std::string& e : errors) spdlog::error("flood {}: {}", spec.name, e);
  if (parts.empty()) {
    return absl::InternalError(
        absl::StrCat("flood ", spec.name, ": no worker reported: ", absl::StrJoin(errors, "; ")));
  }
  auto merged = MergeFloodResults(std::move(parts), PeakMerge::kSum);
  if (!merged.ok()) return merged.status();
  std::move(errors.begin(), errors.end(), std::back_inserter(merged->worker_errors));
  merged->threads = threads;
  merged->workers = workers;
  // The merged keepalive (per-share ones from the workers are none) becomes the group itself.
  if (merged->keepalive != nullptr) {
    merged->keepalive = std::make_shared<std::pair<std::shared_ptr<void>, std::shared_ptr<void>>>(
        std::move(merged->keepalive), group);
  } else {
    merged->keepalive = group;
  }
  return merged;
}

bool IsFloodWorkerInvocation(int argc, char** argv) {
  return argc >= 2 && std::strcmp(argv[1], "--flood-worker") == 0;
}

int FloodWorkerMain(int argc, char** argv) {
  pid_t parent = 0;
  for (int i = 2; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--parent") == 0) absl::SimpleAtoi(argv[i + 1], &parent);
  }
  // Die with the agent; and if it is already gone, do not run at all.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (parent <= 0 || getppid() != parent) return 3;
  signal(SIGPIPE, SIG_IGN);
  auto log = spdlog::stderr_logger_mt("flood-worker");
  spdlog::set_default_logger(log);

  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  uint32_t len = 0;
  std::string body;
  if (!ReadExactly(0, &len, sizeof(len)) || len > kMaxMessage) return 4;
  body.resize(len);
  if (!ReadExactly(0, body.data(), len)) return 4;

  auto reply = [](char kind, const std::string& payload) {
    Writer w;
    w.U8(static_cast<uint8_t>(kind));
    w.Bytes(payload);
    WriteAll(kWorkerResultFd, w.out());
  };
  absl::StatusOr<WorkerRequest> request = DecodeRequest(body);
  if (!request.ok()) {
    reply('E', absl::StrCat("bad request: ", request.status().message()));
    return 5;
  }
  spdlog::set_pattern(absl::StrCat("[%H:%M:%S.%e] [flood-worker ", request->index + 1, "/",
                                   request->count, " pid ", getpid(), "] [%l] %v"));

  // Stdin after the request: 'S' = stop early; EOF = the agent dropped the result (or died).
  std::atomic<bool> stop{false};
  std::thread control([&stop] {
    char c = 0;
    while (true) {
      const ssize_t n = ::read(0, &c, 1);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      if (c == 'S') stop = true;
    }
    stop = true;
  });
  absl::StatusOr<FloodResult> result =
      RunFloodThreads(request->share, request->threads, request->run_start, stop);
  if (result.ok()) {
    v1::FloodResult proto;
    ToProto(*result, &proto);
    proto.set_threads(result->threads);
    proto.set_workers(1);
    reply('R', proto.SerializeAsString());
  } else {
    reply('E', std::string(result.status().message()));
  }
  ::close(kWorkerResultFd);
  // Hold the sockets (in `result`) until the agent closes our stdin.
  control.join();
  return 0;
}

}  // namespace synq::agent
