// TLS certificate files for the control plane, checked with OpenSSL before gRPC sees them, so that
// every problem names the file and the reason (unreadable, not PEM, expired, key mismatch,
// wrong CA). The agent and the controller both load their files through here.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace synq::common {

// Paths of one side's certificate, private key and trusted CA, and how errors name each one
// ("--tls-cert" on the command line, "hosts.server.tls.cert" in a scenario).
struct TlsFileSet {
  std::string cert;
  std::string key;
  std::string ca;
  std::string cert_name = "--tls-cert";
  std::string key_name = "--tls-key";
  std::string ca_name = "--tls-ca";
  bool empty() const { return cert.empty() && key.empty() && ca.empty(); }
};

// The checked PEM texts, ready for gRPC's SSL credentials.
struct TlsMaterial {
  std::string cert_pem;
  std::string key_pem;
  std::string ca_pem;
  std::string subject;             // the certificate's subject ("CN=agent-1")
  std::vector<std::string> names;  // its subject alternative names ("DNS:a", "IP:127.0.0.1")
};

// Reads and checks the three files: each readable and PEM; the certificate and every CA
// certificate valid now; the key the certificate's; the certificate signed by the CA. All three
// paths are required; a missing one is an error naming its setting.
absl::StatusOr<TlsMaterial> LoadTlsFiles(const TlsFileSet& files);

// Why a TLS handshake with `address` ("host:port") fails, found by doing one with OpenSSL: the
// server's certificate not signed by our CA, not matching `server_name`, expired; or the server
// refusing our certificate. OK when the handshake succeeds. `server_name` empty = the host part
// of the address. Used to explain a channel gRPC could not open.
absl::Status DiagnoseTlsHandshake(const std::string& address, const std::string& server_name,
                                  const TlsMaterial& material, const TlsFileSet& files,
                                  std::chrono::milliseconds timeout);

// Whether `address` ("host:port") answers a TLS handshake (we offer no certificate): tells an
// agent that wants mutual TLS from one that is down.
bool ServesTls(const std::string& address, std::chrono::milliseconds timeout);

}  // namespace synq::common
