// The engine parameter of the flood engine tests: each TEST_P runs once per engine (io_uring and
// epoll). The fixture makes the parameter this process's engine, so every spec (engine kAuto)
// runs on it.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "absl/status/statusor.h"
#include "agent/flood/flood_engine.h"
#include "agent/flood/uring.h"

namespace synq::agent {

class EngineParamTest : public ::testing::TestWithParam<FloodEngine> {
 protected:
  void SetUp() override { SetProcessFloodEngine({GetParam(), ""}); }
  void TearDown() override { SetProcessFloodEngine({FloodEngine::kIoUring, ""}); }
};

inline std::string EngineParamName(const ::testing::TestParamInfo<FloodEngine>& info) {
  return FloodEngineName(info.param);
}

// Skips an io_uring instance of a test where the kernel (or a seccomp filter) refuses io_uring.
#define SKIP_WITHOUT_ENGINE()                                                      \
  do {                                                                             \
    if (GetParam() == FloodEngine::kIoUring) {                                     \
      absl::StatusOr<flood::Uring> probe = flood::Uring::Create(8, 16);            \
      if (!probe.ok()) GTEST_SKIP() << "io_uring unavailable: " << probe.status(); \
    }                                                                              \
  } while (0)

}  // namespace synq::agent
