// The agent's --metrics-listen endpoint: GET /metrics answers AgentMetrics::Render() over plain
// HTTP (cpp-httplib, Debian's libcpp-httplib-dev) on a thread of its own.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "agent/metrics/agent_metrics.h"

namespace httplib {
class Server;
}

namespace synq::agent {

class MetricsHttpServer {
 public:
  // Binds `listen` ("HOST:PORT", "[::1]:PORT"; port 0 = any free port) and serves `metrics`
  // until destroyed. InvalidArgument naming --metrics-listen for a bad address, Unavailable when
  // the port cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(const std::string& listen,
                                                                  const AgentMetrics& metrics);
  ~MetricsHttpServer();
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  // The bound address, "HOST:PORT" with the real port.
  const std::string& address() const { return address_; }

 private:
  MetricsHttpServer() = default;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::string address_;
};

// "HOST:PORT" or "[V6]:PORT" -> host (brackets removed) and port; `flag` names the option in
// errors.
struct HostPort {
  std::string host;
  int port = 0;
};
absl::StatusOr<HostPort> ParseHostPort(const std::string& flag, const std::string& text);

}  // namespace synq::agent
