#include "controller/scenario/discover_target.h"

#include <arpa/inet.h>

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "controller/scenario/values.h"

namespace synq::controller::scenario {
namespace {

constexpr char kForm[] = "expected dns:///NAME:PORT or dns://SERVER[:PORT]/NAME:PORT";

bool IsIpLiteral(const std::string& text) {
  in_addr v4;
  in6_addr v6;
  return inet_pton(AF_INET, text.c_str(), &v4) == 1 || inet_pton(AF_INET6, text.c_str(), &v6) == 1;
}

absl::StatusOr<uint16_t> ParsePort(absl::string_view text, absl::string_view what) {
  uint32_t port = 0;
  if (!absl::SimpleAtoi(text, &port) || port == 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " port must be 1 to 65535, got ", Quote(text)));
  }
  return static_cast<uint16_t>(port);
}

// "1.2.3.4", "1.2.3.4:53", "[::1]:53", "::1" -> "ip" or "ip:port" as c-ares takes it.
absl::StatusOr<std::string> ParseServer(absl::string_view text) {
  std::string host(text);
  std::string port;
  if (absl::ConsumePrefix(&text, "[")) {
    const size_t close = text.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("DNS server ", Quote(host), ": missing ]"));
    }
    host = std::string(text.substr(0, close));
    absl::string_view rest = text.substr(close + 1);
    if (!rest.empty() && !absl::ConsumePrefix(&rest, ":")) {
      return absl::InvalidArgumentError(absl::StrCat("DNS server: unexpected ", Quote(rest)));
    }
    port = std::string(rest);
  } else if (const size_t colon = text.find(':');
             colon != absl::string_view::npos && text.rfind(':') == colon) {
    host = std::string(text.substr(0, colon));  // one colon: IPv4 with a port
    port = std::string(text.substr(colon + 1));
  }
  if (!IsIpLiteral(host)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "DNS server ", Quote(host), " must be an IP address (the server to ask, not a name)"));
  }
  if (port.empty()) return host.find(':') == std::string::npos ? host : "[" + host + "]";
  absl::StatusOr<uint16_t> p = ParsePort(port, "DNS server");
  if (!p.ok()) return p.status();
  return host.find(':') == std::string::npos ? absl::StrCat(host, ":", *p)
                                             : absl::StrCat("[", host, "]:", *p);
}

}  // namespace

absl::StatusOr<DiscoverTarget> ParseDiscoverTarget(absl::string_view uri) {
  DiscoverTarget target;
  target.uri = std::string(uri);
  absl::string_view rest = uri;
  if (!absl::ConsumePrefix(&rest, "dns://")) {
    return absl::InvalidArgumentError(absl::StrCat(kForm, ", got ", Quote(uri)));
  }
  const size_t slash = rest.find('/');
  if (slash == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(kForm, ", got ", Quote(uri)));
  }
  if (slash > 0) {
    absl::StatusOr<std::string> server = ParseServer(rest.substr(0, slash));
    if (!server.ok()) return server.status();
    target.dns_server = *server;
  }
  absl::string_view endpoint = rest.substr(slash + 1);
  const size_t colon = endpoint.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("needs NAME:PORT after the /, got ", Quote(endpoint), " (", kForm, ")"));
  }
  absl::string_view name = endpoint.substr(0, colon);
  if (name.size() > 253) {
    return absl::InvalidArgumentError(
        absl::StrCat("name is ", name.size(), " characters; DNS names have at most 253"));
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_') {
      return absl::InvalidArgumentError(
          absl::StrCat("name ", Quote(name), " has ", Quote(std::string(1, c)),
                       "; DNS names use letters, digits, -, _ and ."));
    }
  }
  absl::StatusOr<uint16_t> port = ParsePort(endpoint.substr(colon + 1), "agent");
  if (!port.ok()) return port.status();
  target.name = std::string(name);
  target.port = *port;
  return target;
}

}  // namespace synq::controller::scenario
