// Proves the scenario's per-host `tls:` block: the four fields load, cert/key/ca go together,
// unknown fields and empty values are named by hosts.NAME.tls.FIELD, and local hosts (embedded,
// unix:) cannot have one.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "controller/scenario_loader.h"

namespace synq::controller {
namespace {

using ::testing::Contains;

std::vector<std::string> Errors(const LoadResult& r) {
  std::vector<std::string> out;
  for (const auto& e : r.errors) out.push_back(e.ToString());
  return out;
}

TEST(ScenarioTls, LoadsTheFourFields) {
  LoadResult r = LoadScenario(R"(name: t
hosts:
  server: { agent: "10.0.0.7:7700",
            tls: { cert: c.pem, key: c.key, ca: ca.pem, server_name: server.lab } }
listeners: [ { name: l1 } ]
)");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(Errors(r));
  const HostTls& tls = r.scenario.hosts[0].tls;
  EXPECT_EQ(tls.cert, "c.pem");
  EXPECT_EQ(tls.key, "c.key");
  EXPECT_EQ(tls.ca, "ca.pem");
  EXPECT_EQ(tls.server_name, "server.lab");
}

TEST(ScenarioTls, EachProblemNamesItsField) {
  LoadResult r = LoadScenario(R"(name: t
hosts:
  a: { agent: "10.0.0.7:7700", tls: { cert: c.pem, ca: "", pin: x } }
  b: { tls: { cert: c.pem, key: c.key, ca: ca.pem } }
  c: { agent: "unix:/run/a.sock", tls: { cert: c.pem, key: c.key, ca: ca.pem } }
  d: { agent: "10.0.0.8:7700", tls: [c.pem] }
listeners: [ { name: l1, host: a } ]
)");
  const std::vector<std::string> errors = Errors(r);
  EXPECT_THAT(errors, Contains("hosts.a.tls.ca: must not be empty"));
  EXPECT_THAT(errors, Contains("hosts.a.tls.pin: unknown field (expected cert, key, ca, "
                               "server_name)"));
  EXPECT_THAT(errors,
              Contains("hosts.a.tls.key: required in a tls: block (cert, key and ca go together)"));
  EXPECT_THAT(errors, Contains("hosts.b.tls: only for agents on HOST:PORT: embedded hosts and "
                               "unix: agents are local"));
  EXPECT_THAT(errors, Contains("hosts.c.tls: only for agents on HOST:PORT: embedded hosts and "
                               "unix: agents are local"));
  EXPECT_THAT(errors, Contains(::testing::StartsWith("hosts.d.tls: expected {cert: FILE")));
}

}  // namespace
}  // namespace synq::controller
