// Fan-out helpers for the phases: every agent's call goes out at once on gRPC's callback API
// (AgentClient::...Async), and the phase waits for every answer. No thread per agent: the
// answers arrive on gRPC's callback threads. Every call carries its own deadline, so every wait
// here ends.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace synq::controller {

// Counts answers still due; Wait() returns once Done() was called `n` times.
class Countdown {
 public:
  explicit Countdown(size_t n) : left_(n) {}
  void Done() {
    std::lock_guard<std::mutex> lock(mu_);
    if (left_ > 0 && --left_ == 0) cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return left_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  size_t left_;
};

// Calls start(i, done) for every i in [0, n) at once and returns once every `done` ran. `start`
// issues an asynchronous call whose completion handles the answer and then calls done().
inline void FanOut(size_t n, const std::function<void(size_t, std::function<void()> done)>& start) {
  Countdown pending(n);
  for (size_t i = 0; i < n; ++i) start(i, [&pending] { pending.Done(); });
  pending.Wait();
}

// One step of a chain: does its work asynchronously, then calls next(true) to go on with the
// chain or next(false) to stop it.
using ChainStep = std::function<void(std::function<void(bool)> next)>;

// Runs every chain at once, the steps of one chain in order (a host's listeners in file order);
// returns when every chain ended or stopped.
inline void RunChains(std::vector<std::vector<ChainStep>> chains) {
  // Shared with the continuations, which may still be let go of on a gRPC thread after Wait().
  struct Runner : std::enable_shared_from_this<Runner> {
    explicit Runner(size_t n) : pending(n), next(n, 0) {}
    Countdown pending;
    std::vector<std::vector<ChainStep>> chains;
    std::vector<size_t> next;  // per chain; only its own continuation touches it

    void Advance(size_t c) {
      if (next[c] >= chains[c].size()) {
        pending.Done();
        return;
      }
      ChainStep& step = chains[c][next[c]++];
      step([self = shared_from_this(), c](bool go_on) {
        if (go_on) {
          self->Advance(c);
        } else {
          self->pending.Done();
        }
      });
    }
  };
  auto runner = std::make_shared<Runner>(chains.size());
  runner->chains = std::move(chains);
  for (size_t c = 0; c < runner->chains.size(); ++c) runner->Advance(c);
  runner->pending.Wait();
}

}  // namespace synq::controller
