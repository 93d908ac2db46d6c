// What a connect flood does and what it measured: plain structs, no gRPC or protobuf.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/histogram.h"
#include "common/net_address.h"
#include "common/unique_fd.h"

namespace synq::agent {

struct FloodSpec {
  std::string name;
  common::SocketAddress target;
  std::string source;  // local address to bind before connect; empty = kernel's choice
  uint64_t connections = 1;
  uint32_t concurrency = 1;  // connects in flight at most
  double rate = 0;           // connects/s; 0 = as fast as concurrency allows
  std::chrono::nanoseconds connect_timeout{std::chrono::seconds(1)};
  std::chrono::nanoseconds start_after{0};  // offset from the run's start instant
  std::chrono::nanoseconds hold{
      std::chrono::seconds(1)};  // watch for resets after the last connect
  std::string payload;           // sent right after connect, if not empty
};

enum class Outcome { kEstablished, kReset, kRefused, kTimedOut, kError };

// One attempt. Times are from the attempt's start (socket creation).
struct ConnectionRecord {
  std::string local;  // "ip:port" (empty if the socket never got one)
  std::string remote;
  Outcome outcome = Outcome::kError;
  std::string error_name;  // errno name for kError ("EADDRNOTAVAIL")
  std::chrono::system_clock::time_point started_at;
  std::chrono::nanoseconds connect_latency{-1};  // -1 when it never connected
  std::chrono::nanoseconds outcome_after{-1};    // when reset/refused/timed-out/error was seen
};

struct FloodResult {
  std::string name;
  uint64_t attempted = 0;
  uint64_t established = 0;
  uint64_t reset = 0;
  uint64_t refused = 0;
  uint64_t timed_out = 0;
  std::map<std::string, uint64_t> errors;  // errno name -> count
  common::Histogram connect_latency_us;
  std::vector<ConnectionRecord> connections;
  std::chrono::system_clock::time_point started_at;  // actual start
  // Connections still established at the end of hold, left open so the server's view can be
  // read before the client closes them; the run closes them when it ends.
  std::shared_ptr<std::vector<common::UniqueFd>> held_sockets =
      std::make_shared<std::vector<common::UniqueFd>>();
};

}  // namespace synq::agent
