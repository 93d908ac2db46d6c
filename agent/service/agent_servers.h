// Builds the agent's gRPC servers: the main one (AgentService, grpc.health.v1 and server
// reflection, on --listen with the chosen credentials) and the optional probe server
// (--health-listen: plaintext, grpc.health.v1 ONLY), and keeps their health status in step.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/server.h"

namespace synq::agent {

// A started server and the address it bound ("unix:/path" or "HOST:PORT" with the real port).
struct BoundServer {
  std::unique_ptr<grpc::Server> server;
  std::string address;
};

// Turns on gRPC's default grpc.health.v1 service for every server built afterwards. Call once,
// before building any server.
void EnableHealthService();

// The main server: `service` plus grpc.health.v1 and server reflection (for grpcurl and friends;
// it lists what the same port already serves, behind the same credentials). Unavailable naming
// --listen when it cannot bind.
absl::StatusOr<BoundServer> StartAgentServer(const std::string& listen,
                                             std::shared_ptr<grpc::ServerCredentials> credentials,
                                             grpc::Service* service);

// The probe server for kubelet's gRPC probes: plaintext, grpc.health.v1 only (no reflection,
// no AgentService). It tells whoever reaches it one thing, whether the agent serves runs.
absl::StatusOr<BoundServer> StartHealthServer(const std::string& listen);

// The serving status every health service reports, for the overall server ("") and for
// synq.agent.v1.AgentService. Thread-safe.
class HealthStatus {
 public:
  // Reports the current status on `server`'s health service from now on.
  void Track(grpc::Server* server);
  // SERVING when true, NOT_SERVING otherwise, on every tracked server.
  void Set(bool serving);
  bool serving() const;

 private:
  void ApplyLocked(grpc::Server* server) const;
  mutable std::mutex mu_;
  std::vector<grpc::Server*> servers_;
  bool serving_ = false;
};

}  // namespace synq::agent
