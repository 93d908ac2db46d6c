#pragma once

#include <time.h>

#include <chrono>

namespace synq::common {

// CPU time (user + system) this process has used so far, over all its threads
// (CLOCK_PROCESS_CPUTIME_ID). Differences of two readings give the CPU a piece of work cost the
// process, including the threads that served it meanwhile (gRPC's callback threads).
inline std::chrono::nanoseconds ProcessCpuTime() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

}  // namespace synq::common
