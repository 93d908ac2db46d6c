#include "agent/service/tls_config.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/access_policy.h"
#include "common/net_address.h"
#include "common/tls_files.h"
#include "grpcpp/security/server_credentials.h"

namespace synq::agent {

bool IsLocalListenAddress(const std::string& listen) {
  if (absl::StartsWith(listen, "unix:") || absl::StartsWith(listen, "unix-abstract:")) return true;
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = listen.substr(0, colon);
  if (host == "localhost") return true;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  auto address = common::ParseHostAddress(host, 0);
  if (!address.ok()) return false;  // a DNS name: may resolve to anything
  return ParseCidr("127.0.0.0/8")->Contains(*address) || ParseCidr("::1/128")->Contains(*address);
}

absl::StatusOr<ServingSecurity> ChooseServerCredentials(const std::string& listen,
                                                        const AgentTlsFlags& flags) {
  ServingSecurity out;
  common::TlsFileSet files{flags.cert, flags.key, flags.ca};
  if (!files.empty()) {
    if (flags.insecure) {
      return absl::InvalidArgumentError("--insecure: not with --tls-cert/--tls-key/--tls-ca");
    }
    auto material = common::LoadTlsFiles(files);
    if (!material.ok()) return material.status();
    grpc::SslServerCredentialsOptions options(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    options.pem_root_certs = material->ca_pem;
    options.pem_key_cert_pairs.push_back({material->key_pem, material->cert_pem});
    out.credentials = grpc::SslServerCredentials(options);
    out.tls = true;
    out.subject = material->subject;
    return out;
  }
  out.credentials = grpc::InsecureServerCredentials();
  if (IsLocalListenAddress(listen)) return out;
  if (!flags.insecure) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--listen ", listen,
        ": refusing to serve without TLS on an address other hosts can reach: anyone who "
        "reaches it could start floods and change kernel settings. Give --tls-cert, --tls-key "
        "and --tls-ca (mutual TLS; deploy/certs/issue-certs.sh issues them), listen on loopback "
        "or unix:/path, or add --insecure to accept that risk"));
  }
  out.insecure = true;
  return out;
}

}  // namespace synq::agent
