// Who is calling: the authenticated TLS identity of the peer and the run token it presents.
#pragma once

#include <string>

#include "agent/run/run_session.h"
#include "grpcpp/grpcpp.h"

namespace synq::agent {

// The gRPC metadata key a caller sends its run token under (BeginRunResponse.run_token).
inline constexpr char kRunTokenMetadata[] = "synq-run-token";

// The peer's certificate identity when the channel is TLS with a verified client certificate
// (its subject alternative names and common name, joined by ","), else empty.
std::string PeerIdentity(const grpc::ServerContextBase& context);

// The caller of this RPC: its identity and the run token from its metadata.
Caller CallerOf(const grpc::ServerContextBase& context);

}  // namespace synq::agent
