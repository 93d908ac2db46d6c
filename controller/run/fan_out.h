// One bounded fan-out helper for every phase that talks to many agents at once.
#pragma once

#include <algorithm>
#include <cstddef>
#include <functional>
#include <thread>
#include <vector>

namespace synq::controller {

// Runs fn(i) for i in [0, n) on up to `width` threads at once and returns when all are done.
inline void FanOut(size_t n, const std::function<void(size_t)>& fn, size_t width = 64) {
  for (size_t base = 0; base < n; base += width) {
    std::vector<std::thread> threads;
    for (size_t i = base; i < std::min(n, base + width); ++i) threads.emplace_back(fn, i);
    for (auto& t : threads) t.join();
  }
}

}  // namespace synq::controller
