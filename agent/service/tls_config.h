// How the agent serves gRPC: mutual TLS from --tls-cert/--tls-key/--tls-ca, or plaintext only
// where that is safe (a unix socket, loopback) or explicitly asked for (--insecure).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/security/server_credentials.h"

namespace synq::agent {

struct AgentTlsFlags {
  std::string cert;
  std::string key;
  std::string ca;
  bool insecure = false;  // --insecure: serve plaintext on a non-loopback address
};

struct ServingSecurity {
  std::shared_ptr<grpc::ServerCredentials> credentials;
  bool tls = false;       // mutual TLS: every caller shows a certificate signed by the CA
  bool insecure = false;  // plaintext on an address others can reach (--insecure)
  std::string subject;    // the agent's own certificate subject, with TLS
};

// Whether `listen` ("unix:/path", "127.0.0.1:7700", "[::1]:0", "localhost:7700") can only be
// reached from this host.
bool IsLocalListenAddress(const std::string& listen);

// The credentials for `listen`. The TLS files are checked first (each problem names the flag, the
// file and the reason). Without TLS, a non-local address is refused unless flags.insecure.
absl::StatusOr<ServingSecurity> ChooseServerCredentials(const std::string& listen,
                                                        const AgentTlsFlags& flags);

}  // namespace synq::agent
