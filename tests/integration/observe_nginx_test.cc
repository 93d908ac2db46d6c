// Proves that a flood at a server synq did not start (Debian's nginx, in a namespace this test
// makes) gets fates that match the server's own count: with `observe:` the agent on the server's
// host finds nginx's listening socket, reports its effective backlog and owner, and its sockets
// join the fates, so synq's `accepted` equals the connections nginx's stub_status says it
// accepted. Without an observing agent the same flood says not_observed, never
// unknown_to_server.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "tests/integration/harness.h"

namespace synq::testing {
namespace {

constexpr char kServerIp[] = "198.19.77.1";
constexpr char kClientIp[] = "198.19.77.2";
constexpr int kPort = 8080;
constexpr int kBacklog = 8;
constexpr char kLabAgents[] = "unix:/run/synq/lab/";

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool NginxInstalled() { return std::filesystem::exists("/usr/sbin/nginx"); }

// A process started by this test, stopped (SIGTERM, then SIGKILL) however the test ends.
struct Child {
  pid_t pid = -1;
  ~Child() { Stop(); }
  void Stop() {
    if (pid <= 0) return;
    kill(pid, SIGTERM);
    if (WaitFor(pid, std::chrono::seconds(10)) < 0) {
      kill(pid, SIGKILL);
      WaitFor(pid, std::chrono::seconds(5));
    }
    pid = -1;
  }
};

// Two namespaces joined by a veth pair, addressed from 198.18.0.0/15; deleted by TestNetns.
struct Pair {
  TestNetns server{"osrv"};
  TestNetns client{"ocli"};
  Pair() {
    RunProcess({"/usr/bin/env", "ip", "link", "add", "veth0", "netns", server.name(), "type",
                "veth", "peer", "name", "veth0", "netns", client.name()});
    server.Exec({"ip", "addr", "add", absl::StrCat(kServerIp, "/24"), "dev", "veth0"});
    client.Exec({"ip", "addr", "add", absl::StrCat(kClientIp, "/24"), "dev", "veth0"});
    server.Exec({"ip", "link", "set", "veth0", "up"});
    client.Exec({"ip", "link", "set", "veth0", "up"});
  }
};

// One HTTP GET from inside namespace `ns` (a thread that joins it), answered body included.
std::string HttpGetIn(const std::string& ns, const std::string& path) {
  std::string reply;
  std::thread([&] {
    const int nsfd = open(absl::StrCat("/var/run/netns/", ns).c_str(), O_RDONLY | O_CLOEXEC);
    if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) != 0) return;
    close(nsfd);
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(kPort);
    inet_pton(AF_INET, kServerIp, &to.sin_addr);
    if (connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) == 0) {
      const std::string request =
          absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
      (void)!write(fd, request.data(), request.size());
      char buf[4096];
      ssize_t n = 0;
      while ((n = read(fd, buf, sizeof(buf))) > 0) reply.append(buf, static_cast<size_t>(n));
    }
    close(fd);
  }).join();
  return reply;
}

struct StubStatus {
  long accepts = -1, handled = -1, requests = -1;
};
std::optional<StubStatus> ParseStubStatus(const std::string& reply) {
  std::smatch m;
  if (!std::regex_search(reply, m, std::regex(R"(accepts handled requests\s+(\d+) (\d+) (\d+))"))) {
    return std::nullopt;
  }
  return StubStatus{std::stol(m[1]), std::stol(m[2]), std::stol(m[3])};
}

// Starts synq-agent in `ns`; waits until it listens on `socket`.
pid_t StartAgent(const TempDir& dir, const std::string& ns, const std::string& name) {
  const std::string state = absl::StrCat(dir.path(), "/", name);
  std::filesystem::create_directories(state);
  const std::string ready = state + "/agent.addr";
  const pid_t pid =
      Spawn({Binary("agent/synq-agent"), "--listen", absl::StrCat("unix:", state, "/agent.sock"),
             "--state-dir", state, "--port-file", ready, "--netns", ns, "--parent-death"},
            state + "/agent.log");
  for (int i = 0; i < 300 && !std::filesystem::exists(ready); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pid;
}

std::string NginxConfig(const std::string& dir) {
  // Foreground master (so the test's SIGTERM stops it), one worker, everything in `dir`, root
  // workers so that no daemon user needs to read the temp dir. Keep-alive is off on the client
  // side (Connection: close): nginx answers and closes, leaving FIN_WAIT2/TIME_WAIT sockets.
  return absl::StrCat(R"(daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 16384;
user root;
pid )",
                      dir, R"(/nginx.pid;
error_log )",
                      dir, R"(/error.log;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path )",
                      dir, R"(/body;
  proxy_temp_path )",
                      dir, R"(/proxy;
  fastcgi_temp_path )",
                      dir, R"(/fastcgi;
  uwsgi_temp_path )",
                      dir, R"(/uwsgi;
  scgi_temp_path )",
                      dir, R"(/scgi;
  server {
    listen )",
                      kServerIp, ":", kPort, " backlog=", kBacklog, R"(;
    location / { return 200 "ok"; }
    location /status { stub_status; }
  }
}
)");
}

// nginx in the server namespace, and an agent in each namespace; all stopped and deleted
// however the test ends (members are destroyed in reverse order: agents, nginx, namespaces).
class ObserveNginx : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!IsRoot()) GTEST_SKIP() << "needs root: the server is nginx in a network namespace";
    if (!NginxInstalled()) GTEST_SKIP() << "needs Debian's nginx (.ci/dev setup installs it)";
    net_.emplace();
    nginx_.pid =
        Spawn({"/usr/bin/env", "ip", "netns", "exec", net_->server.name(), "/usr/sbin/nginx", "-c",
               dir_.Write("nginx.conf", NginxConfig(dir_.path())), "-p", dir_.path()},
              dir_.path() + "/nginx.out");
    std::string listening;
    for (int i = 0; i < 250 && listening.find(":8080") == std::string::npos; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      listening = net_->server.Exec({"ss", "-Hltn"});
    }
    ASSERT_NE(listening.find(absl::StrCat(kServerIp, ":", kPort)), std::string::npos)
        << "nginx did not listen: " << listening;
    server_agent_.pid = StartAgent(dir_, net_->server.name(), "srv");
    client_agent_.pid = StartAgent(dir_, net_->client.name(), "cli");
  }

  TempDir dir_;
  std::optional<Pair> net_;
  Child nginx_;
  Child server_agent_;
  Child client_agent_;
};

TEST_F(ObserveNginx, FatesOfAFloodMatchNginxsOwnAcceptCount) {
  const TempDir& dir = dir_;
  const Pair& net = *net_;
  // examples/nginx-observed.yaml, aimed at this test's agents instead of a lab's: a bounded
  // burst of 3,000 connects, all launched at once against an accept queue of 8, each sending one
  // request that nginx answers before closing.
  std::string scenario_text = ReadText(Source("examples/nginx-observed.yaml"));
  for (size_t at = 0; (at = scenario_text.find(kLabAgents, at)) != std::string::npos;) {
    scenario_text.replace(at, strlen(kLabAgents), absl::StrCat("unix:", dir.path(), "/"));
  }
  const std::string scenario = dir.Write("observe.yaml", scenario_text);
  SynqRun r = RunSynq(scenario, dir.path() + "/out", {"--connections"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_FALSE(r.result.is_null()) << r.output;

  // One status request, after the run: stub_status counts the connection that asks, so the
  // flood's share of `accepts` is accepts - 1. No other client reaches this namespace.
  const std::optional<StubStatus> status = ParseStubStatus(HttpGetIn(net.client.name(), "/status"));
  ASSERT_TRUE(status.has_value()) << "no stub_status reply";
  const long nginx_accepted = status->accepts - 1;

  const auto& run = r.result["runs"][0];
  const auto& web = run["listeners"]["web"];
  const auto& flood = run["floods"]["f1"];
  const auto& fates = flood["fates"];
  auto n = [](const nlohmann::json& j, const char* key) {
    return j.contains(key) ? j[key].get<long>() : 0L;
  };
  std::printf(
      "nginx stub_status: accepts %ld handled %ld requests %ld (flood's accepts %ld)\n"
      "synq: attempted %ld established %ld timed_out %ld reset %ld errors %s answered %ld\n"
      "synq fates: accepted %ld queued %ld syn_recv %ld unknown_to_server %ld timed_out %ld "
      "error %ld; listener accepted %ld, backlog_effective %ld, peak %ld, owner %s\n",
      status->accepts, status->handled, status->requests, nginx_accepted, n(flood, "attempted"),
      n(flood, "established"), n(flood, "timed_out"), n(flood, "reset"),
      flood.value("errors", nlohmann::json::object()).dump().c_str(), n(flood, "answered"),
      n(fates, "accepted"), n(fates, "queued"), n(fates, "syn_recv"), n(fates, "unknown_to_server"),
      n(fates, "timed_out"), n(fates, "error"), n(web, "accepted"), n(web, "backlog_effective"),
      n(web, "accept_queue_peak"), web.value("owner", "").c_str());

  if (getenv("SYNQ_DEBUG_OBSERVE")) std::printf("%s\n", run["hosts"].dump(1).c_str());
  EXPECT_TRUE(web.value("observed", false));
  EXPECT_EQ(web.value("owner", "").rfind("nginx (pid ", 0), 0u) << web.dump();
  // listen(fd, 8) under the namespace's somaxconn (4096): the kernel keeps min(8, 4096).
  EXPECT_EQ(n(web, "backlog_effective"), kBacklog);
  EXPECT_TRUE(flood.value("server_observed", false));
  ASSERT_GT(nginx_accepted, 0);
  // Every connection nginx accepted is one of the flood's (the status request is excluded), and
  // every one of them is `accepted` in synq's fates: joined by 4-tuple with a server socket the
  // server took off the queue, or read as an orderly close only the server application makes.
  // Nothing can reach nginx once synq has looked: no connection is pending (asserted below), so
  // the counts are equal.
  EXPECT_EQ(n(fates, "accepted"), nginx_accepted);
  EXPECT_EQ(status->handled, status->accepts) << "nginx dropped connections it accepted";
  // The server's settings (no syncookies, abort_on_overflow) leave no client-established
  // connection without server state: an ACK that overflows is reset, a SYN that does is dropped.
  EXPECT_EQ(n(fates, "unknown_to_server"), 0);
  EXPECT_EQ(n(fates, "syn_recv") + n(fates, "queued"), 0) << "fates not final at collection";
  // The observed listener's own count: its server sockets seen at collection that nginx took.
  // nginx closed each after answering; the FIN_WAIT2/TIME_WAIT sockets outlive the run.
  EXPECT_EQ(n(web, "accepted"), nginx_accepted);
  if (n(flood, "answered") > 0) {
    // Filled by engines that count replies: every accepted connection got nginx's answer.
    EXPECT_GE(n(flood, "answered"), n(fates, "accepted"));
  }
  // The samples of the observed listener's queue exist (Watch reports it like synq's own).
  bool sampled = false;
  for (const auto& s : run["samples"]) sampled = sampled || s["listeners"].contains("web");
  EXPECT_TRUE(sampled);
}

TEST_F(ObserveNginx, AFloodAtAServerNobodyObservesSaysNotObserved) {
  // The same nginx, with an agent on its host that is not asked to observe it: the flood's
  // target is ADDRESS:PORT, so nothing can be said about the server side of its connections.
  const std::string scenario =
      dir_.Write("plain.yaml", absl::StrCat(R"(name: nginx-unobserved
hosts:
  srv: { agent: "unix:)",
                                            dir_.path(), R"(/srv/agent.sock" }
  cli: { agent: "unix:)",
                                            dir_.path(), R"(/cli/agent.sock" }
floods:
  - { name: f1, host: cli, target: "198.19.77.1:8080", connections: 20, concurrency: 1,
      connect_timeout: 1s, hold: 200ms, payload: "GET / HTTP/1.1\r\nHost: x\r\n\r\n" }
)"));
  SynqRun r = RunSynq(scenario, dir_.path() + "/out", {"--connections"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto& run = r.result["runs"][0];
  const auto& flood = run["floods"]["f1"];
  // One at a time, nginx keeps up: the connections are established, answered and kept alive.
  const int established = flood.value("established", 0);
  EXPECT_GT(established, 0) << flood.dump();
  EXPECT_FALSE(flood.value("server_observed", false));
  const auto& fates = flood["fates"];
  for (const char* joined : {"accepted", "queued", "syn_recv", "unknown_to_server"}) {
    EXPECT_FALSE(fates.contains(joined)) << joined << " must be absent: " << fates.dump();
  }
  EXPECT_EQ(fates.value("established_unjoined", 0), established);
  bool named = false;
  for (const auto& n : run["not_observed"]) {
    named = named || n.get<std::string>().rfind("floods.f1.fates: ", 0) == 0;
  }
  EXPECT_TRUE(named) << run["not_observed"].dump();
  EXPECT_FALSE(run["listeners"].contains("web"));
}

}  // namespace
}  // namespace synq::testing
