#include "agent/metrics/metrics_http.h"

#include <exception>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "httplib.h"

namespace synq::agent {

absl::StatusOr<HostPort> ParseHostPort(const std::string& flag, const std::string& text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " '", text, "': must be HOST:PORT (e.g. 0.0.0.0:7702 or [::1]:7702)"));
  }
  HostPort out;
  out.host = text.substr(0, colon);
  if (out.host.size() >= 2 && out.host.front() == '[' && out.host.back() == ']') {
    out.host = out.host.substr(1, out.host.size() - 2);
  }
  if (!absl::SimpleAtoi(text.substr(colon + 1), &out.port) || out.port < 0 || out.port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, " '", text, "': port must be 0..65535, got '", text.substr(colon + 1), "'"));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& listen, const AgentMetrics& metrics) {
  auto where = ParseHostPort("--metrics-listen", listen);
  if (!where.ok()) return where.status();
  std::unique_ptr<MetricsHttpServer> out(new MetricsHttpServer());
  out->server_ = std::make_unique<httplib::Server>();
  httplib::Server& server = *out->server_;
  // Scrapes are rare and cheap: two threads, not one per core.
  server.new_task_queue = [] { return new httplib::ThreadPool(2); };
  server.set_read_timeout(std::chrono::seconds(5));
  server.set_write_timeout(std::chrono::seconds(5));
  server.Get("/metrics", [&metrics](const httplib::Request&, httplib::Response& response) {
    response.set_content(metrics.Render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  // The library's boundary: nothing of ours throws, but an exception must not end the agent.
  server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& response, std::exception_ptr) {
        response.status = 500;
        response.set_content("metrics: internal error\n", "text/plain");
      });
  int port = where->port;
  if (port == 0) {
    port = server.bind_to_any_port(where->host);
    if (port <= 0) {
      return absl::UnavailableError(absl::StrCat("--metrics-listen ", listen, ": cannot bind"));
    }
  } else if (!server.bind_to_port(where->host, port)) {
    return absl::UnavailableError(
        absl::StrCat("--metrics-listen ", listen, ": cannot bind (in use or bad address)"));
  }
  const bool v6 = where->host.find(':') != std::string::npos;
  out->address_ = absl::StrCat(v6 ? "[" : "", where->host, v6 ? "]" : "", ":", port);
  out->thread_ = std::thread([&server] { server.listen_after_bind(); });
  // stop() before the loop runs would be lost (the destructor would then wait forever).
  for (int i = 0; i < 5000 && !server.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return out;
}

MetricsHttpServer::~MetricsHttpServer() {
  if (server_ != nullptr) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace synq::agent
