#include "agent/service/caller.h"

#include <string_view>

#include "absl/strings/str_join.h"

namespace synq::agent {

std::string PeerIdentity(const grpc::ServerContextBase& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return "";
  std::vector<std::string> names;
  for (const grpc::string_ref& name : auth->GetPeerIdentity()) {
    names.emplace_back(name.data(), name.size());
  }
  return absl::StrJoin(names, ",");
}

Caller CallerOf(const grpc::ServerContextBase& context) {
  Caller caller;
  caller.identity = PeerIdentity(context);
  const auto& metadata = context.client_metadata();
  if (auto it = metadata.find(kRunTokenMetadata); it != metadata.end()) {
    caller.token.assign(it->second.data(), it->second.size());
  }
  return caller;
}

}  // namespace synq::agent
