// Fuzzes address parsing (common/net_address): any text gives an address or an error; an
// address that parses prints back to text that parses to the same address (round trip).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/net_address.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

bool Same(const synq::common::SocketAddress& a, const synq::common::SocketAddress& b) {
  return a.length == b.length && std::memcmp(&a.storage, &b.storage, a.length) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace synq::common;
  const std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<SocketAddress> address = ParseSocketAddress(text);
  if (address.ok()) {
    Check(address->family() == AF_INET || address->family() == AF_INET6);
    absl::StatusOr<SocketAddress> again = ParseSocketAddress(address->ToString());
    Check(again.ok() && Same(*address, *again));
    absl::StatusOr<SocketAddress> host = ParseHostAddress(address->HostString(), address->port());
    Check(host.ok() && Same(*address, *host));
  }
  absl::StatusOr<SocketAddress> host = ParseHostAddress(text, 80);
  if (host.ok()) {
    Check(host->port() == 80);
    absl::StatusOr<SocketAddress> again = ParseSocketAddress(host->ToString());
    Check(again.ok() && Same(*host, *again));
  }
  return 0;
}
