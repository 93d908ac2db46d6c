#include "agent/service/agent_servers.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/impl/server_builder_plugin.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "synq/agent/v1/agent.grpc.pb.h"

namespace synq::agent {
namespace {

// libgrpc++_reflection adds its plugin to every ServerBuilder when it is loaded (a static
// initializer calling InitProtoReflectionServerBuilderPlugin). These options make that explicit
// per server: the main server has reflection whether or not the initializer ran, and the probe
// server, which must serve grpc.health.v1 alone, has none.
class ReflectionOption final : public grpc::ServerBuilderOption {
 public:
  explicit ReflectionOption(bool wanted) : wanted_(wanted) {}
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    auto reflection = std::make_unique<grpc::reflection::ProtoServerReflectionPlugin>();
    const std::string name = reflection->name();
    std::erase_if(*plugins, [&](const auto& plugin) { return plugin->name() == name; });
    if (wanted_) plugins->push_back(std::move(reflection));
  }

 private:
  const bool wanted_;
};

// Lets a server whose only service is gRPC's default health service start. The builder refuses a
// server without a service of its own to poll its completion queues ("At least one of the
// completion queues must be frequently polled"); the health service is added only later, in
// Server::Start. This plugin registers nothing: it only asks for the polled queues.
class PolledQueuesPlugin final : public grpc::ServerBuilderPlugin {
 public:
  std::string name() override { return "synq_polled_queues"; }
  void InitServer(grpc::ServerInitializer*) override {}
  void Finish(grpc::ServerInitializer*) override {}
  void ChangeArguments(const std::string&, void*) override {}
  bool has_async_methods() const override { return false; }
  bool has_sync_methods() const override { return true; }
};

class PolledQueuesOption final : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->push_back(std::make_unique<PolledQueuesPlugin>());
  }
};

absl::StatusOr<BoundServer> Start(grpc::ServerBuilder& builder, const std::string& flag,
                                  const std::string& listen, int* bound_port) {
  BoundServer out;
  out.server = builder.BuildAndStart();
  if (out.server == nullptr || (!absl::StartsWith(listen, "unix:") && *bound_port == 0)) {
    return absl::UnavailableError(
        absl::StrCat(flag, " ", listen, ": cannot bind (in use or bad address)"));
  }
  out.address = listen;
  if (!absl::StartsWith(listen, "unix:")) {
    out.address = absl::StrCat(listen.substr(0, listen.rfind(':')), ":", *bound_port);
  }
  return out;
}

}  // namespace

void EnableHealthService() { grpc::EnableDefaultHealthCheckService(true); }

absl::StatusOr<BoundServer> StartAgentServer(const std::string& listen,
                                             std::shared_ptr<grpc::ServerCredentials> credentials,
                                             grpc::Service* service) {
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(listen, std::move(credentials), &bound_port);
  builder.RegisterService(service);
  builder.SetOption(std::make_unique<ReflectionOption>(/*wanted=*/true));
  return Start(builder, "--listen", listen, &bound_port);
}

absl::StatusOr<BoundServer> StartHealthServer(const std::string& listen) {
  if (absl::StartsWith(listen, "unix:") || listen.rfind(':') == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--health-listen '", listen, "': must be HOST:PORT (e.g. 0.0.0.0:7701)"));
  }
  grpc::ServerBuilder builder;
  int bound_port = 0;
  // Plaintext on purpose: kubelet's gRPC probe cannot present a client certificate. The only
  // service here is grpc.health.v1 (added by EnableHealthService), which reveals the serving
  // status and nothing else, and changes nothing.
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &bound_port);
  builder.SetOption(std::make_unique<ReflectionOption>(/*wanted=*/false));
  builder.SetOption(std::make_unique<PolledQueuesOption>());
  // One polling thread is plenty for probes.
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 1);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 1);
  return Start(builder, "--health-listen", listen, &bound_port);
}

void HealthStatus::Track(grpc::Server* server) {
  std::lock_guard<std::mutex> lock(mu_);
  servers_.push_back(server);
  ApplyLocked(server);
}

void HealthStatus::Set(bool serving) {
  std::lock_guard<std::mutex> lock(mu_);
  serving_ = serving;
  for (grpc::Server* server : servers_) ApplyLocked(server);
}

bool HealthStatus::serving() const {
  std::lock_guard<std::mutex> lock(mu_);
  return serving_;
}

void HealthStatus::ApplyLocked(grpc::Server* server) const {
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus("", serving_);
  health->SetServingStatus(v1::AgentService::service_full_name(), serving_);
}

}  // namespace synq::agent
