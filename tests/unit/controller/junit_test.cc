// Proves that the JUnit report is what CI systems read: one testsuite per run, one testcase for
// the run itself, per expectation and per baseline check, failure messages with the expression
// and both values (or field, both values and tolerance), proper XML escaping; and that the
// document validates with xmllint against the Jenkins JUnit schema (tests/data/junit/junit.xsd)
// while a document that breaks the schema does not (so the validation can fail).
#include "controller/result/junit.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "controller/verdict/baseline.h"

namespace synq::controller::result {
namespace {

namespace v1 = ::synq::result::v1;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string kSchema = std::string(SYNQ_SOURCE_DIR) + "/tests/data/junit/junit.xsd";

struct Validation {
  int exit_code = -1;
  std::string output;
};

// `xmllint --noout --schema junit.xsd FILE` on `xml`, through a file under $TMPDIR.
Validation Validate(const std::string& xml) {
  char path[] = "/tmp/synq-junit-XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) return {};
  close(fd);
  std::ofstream(path) << xml;
  const std::string cmd =
      "xmllint --noout --schema '" + kSchema + "' '" + std::string(path) + "' 2>&1";
  Validation v;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return v;
  char buf[4096];
  size_t n = 0;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) v.output.append(buf, n);
  const int status = pclose(pipe);
  v.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  unlink(path);
  return v;
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

v1::Expectation Expect(const std::string& expression, const std::string& left,
                       const std::string& op, const std::string& right, double lv, double rv,
                       bool passed) {
  v1::Expectation e;
  e.set_expression(expression);
  e.set_passed(passed);
  v1::Comparison* c = e.add_comparisons();
  c->set_left(left);
  c->set_op(op);
  c->set_right(right);
  c->set_left_value(lv);
  c->set_right_value(rv);
  c->set_passed(passed);
  return e;
}

// Run 0 passes everything; run 1 has a failed expectation, an evaluation error, a regression
// and an agent error; run 2 had no baseline run to compare with.
v1::Result MixedResult() {
  v1::Result r;
  r.set_scenario("somaxconn-cap");
  for (int i = 0; i < 3; ++i) {
    v1::Run* run = r.add_runs();
    run->set_index(i);
    run->set_duration_ms(1500.5);
    google::protobuf::Value v;
    v.set_number_value(8 << i);
    (*run->mutable_params())["settings.server.net.core.somaxconn"] = v;
  }
  v1::Run* ok = r.mutable_runs(0);
  *ok->add_expectations() =
      Expect("floods.f1.connect_latency_ms.p99 < 1500", "floods.f1.connect_latency_ms.p99", "<",
             "1500", 0.25, 1500, true);
  ok->mutable_baseline()->set_file("old.json");
  ok->mutable_baseline()->set_baseline_run_index(0);
  ok->mutable_baseline()->set_passed(true);
  v1::BaselineCheck* pass = ok->mutable_baseline()->add_checks();
  pass->set_field("floods.f1.established");
  pass->set_baseline(9);
  pass->set_current(9);
  pass->set_tolerance_percent(10);
  pass->set_passed(true);
  ok->add_diagnosis()->set_text("backlog 100 was capped to 8 by net.core.somaxconn");

  v1::Run* bad = r.mutable_runs(1);
  *bad->add_expectations() =
      Expect("floods.f1.established == listeners.l1.backlog_effective + 1 & \"x\"",
             "floods.f1.established", "==", "listeners.l1.backlog_effective + 1", 9, 17, false);
  v1::Expectation* broken = bad->add_expectations();
  broken->set_expression("floods.nope.established > 0");
  broken->set_error("floods.nope: no such flood (floods: f1)");
  bad->add_errors("server: agent unreachable <timeout>");
  bad->mutable_baseline()->set_file("old.json");
  bad->mutable_baseline()->set_baseline_run_index(1);
  v1::BaselineCheck* reg = bad->mutable_baseline()->add_checks();
  reg->set_field("listeners.l1.backlog_effective");
  reg->set_baseline(8);
  reg->set_current(16);
  reg->set_tolerance_percent(10);
  reg->set_passed(false);

  v1::Run* none = r.mutable_runs(2);
  none->mutable_baseline()->set_file("old.json");
  none->mutable_baseline()->set_baseline_run_index(-1);
  none->mutable_baseline()->set_passed(true);
  none->mutable_baseline()->set_note("no baseline run with params somaxconn=32: not compared");
  return r;
}

TEST(JUnit, MixedResultValidatesAgainstTheJenkinsSchema) {
  const std::string xml = RenderJUnit(MixedResult());
  const Validation v = Validate(xml);
  ASSERT_NE(v.exit_code, -1) << "could not run xmllint (Debian libxml2-utils)";
  EXPECT_EQ(v.exit_code, 0) << v.output << "\n" << xml;
}

TEST(JUnit, EmptyResultValidates) {
  const Validation v = Validate(RenderJUnit(v1::Result{}));
  EXPECT_EQ(v.exit_code, 0) << v.output;
}

TEST(JUnit, DocumentBreakingTheSchemaFailsValidation) {
  // A testsuite without its required counts and a failure outside any testcase.
  const Validation v = Validate(
      "<?xml version=\"1.0\"?>\n<testsuites><testsuite name=\"x\"><failure message=\"m\"/>"
      "</testsuite></testsuites>\n");
  EXPECT_NE(v.exit_code, 0) << v.output;
  EXPECT_THAT(v.output, HasSubstr("tests"));
  // Not well-formed at all.
  EXPECT_NE(Validate("<testsuites><testsuite>").exit_code, 0);
}

TEST(JUnit, OneSuitePerRunAndOneCasePerRunExpectationAndCheck) {
  const std::string xml = RenderJUnit(MixedResult());
  SCOPED_TRACE(xml);
  EXPECT_EQ(Count(xml, "<testsuite "), 3u);
  EXPECT_THAT(xml, HasSubstr("<testsuite name=\"somaxconn-cap [settings.server.net.core."
                             "somaxconn=8]\" tests=\"3\" failures=\"0\" errors=\"0\" "
                             "skipped=\"0\" time=\"1.500\""));
  // Run 1: run completed (failed), expectation (failed), expectation (error), baseline (failed).
  EXPECT_THAT(xml, HasSubstr("somaxconn=16]\" tests=\"4\" failures=\"3\" errors=\"1\""));
  // Run 2: run completed, skipped baseline.
  EXPECT_THAT(xml, HasSubstr("somaxconn=32]\" tests=\"2\" failures=\"0\" errors=\"0\" "
                             "skipped=\"1\""));
  EXPECT_THAT(xml, HasSubstr("<testsuites name=\"somaxconn-cap\" tests=\"9\" failures=\"3\" "
                             "errors=\"1\""));
  EXPECT_EQ(Count(xml, "<testcase name=\"run completed\""), 3u);
  EXPECT_THAT(xml, HasSubstr("<property name=\"settings.server.net.core.somaxconn\" "
                             "value=\"16\"/>"));
}

TEST(JUnit, FailureMessagesCarryBothValues) {
  const std::string xml = RenderJUnit(MixedResult());
  SCOPED_TRACE(xml);
  // Expectation: the expression (escaped) and both sides' values.
  EXPECT_THAT(xml, HasSubstr("<failure message=\"floods.f1.established == "
                             "listeners.l1.backlog_effective + 1 &amp; &quot;x&quot; is false: "
                             "9 == 17\" type=\"expectation\">"));
  EXPECT_THAT(xml, HasSubstr("<error message=\"floods.nope.established &gt; 0: cannot be "
                             "evaluated: floods.nope: no such flood (floods: f1)\" "
                             "type=\"expectation_error\">"));
  // Baseline: field, both values, change and tolerance.
  EXPECT_THAT(xml, HasSubstr("<testcase name=\"baseline listeners.l1.backlog_effective\""));
  EXPECT_THAT(xml, HasSubstr("<failure message=\"listeners.l1.backlog_effective: 8 -&gt; 16 "
                             "(+100.0%), tolerance 10%\" type=\"baseline_regression\">"));
  EXPECT_THAT(xml, HasSubstr("<failure message=\"server: agent unreachable &lt;timeout&gt;\" "
                             "type=\"run_error\">"));
  EXPECT_THAT(xml, HasSubstr("<skipped message=\"no baseline run with params somaxconn=32: not "
                             "compared\" type=\"no_baseline_run\">"));
  EXPECT_THAT(xml, HasSubstr("<testcase name=\"floods.f1.connect_latency_ms.p99 &lt; 1500\""));
  EXPECT_THAT(xml, HasSubstr("<system-out>backlog 100 was capped to 8 by net.core.somaxconn"));
  EXPECT_THAT(xml, Not(HasSubstr("\" & ")));
}

TEST(JUnit, EscapesMarkupControlCharactersAndBrokenUtf8) {
  EXPECT_EQ(XmlEscape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
  EXPECT_EQ(XmlEscape("line1\nline2\tx\r"), "line1&#10;line2&#9;x&#13;");
  EXPECT_EQ(XmlEscape("line1\nline2\tx\r<", /*attribute=*/false), "line1\nline2\tx&#13;&lt;");
  EXPECT_EQ(XmlEscape(std::string("bell\x07", 5)), "bell\xEF\xBF\xBD");
  EXPECT_EQ(XmlEscape(std::string("nul\0x", 5)), "nul\xEF\xBF\xBDx");
  EXPECT_EQ(XmlEscape("caf\xC3\xA9 \xE2\x89\xA4"), "caf\xC3\xA9 \xE2\x89\xA4");  // é ≤ kept
  EXPECT_EQ(XmlEscape("bad\xC3("), "bad\xEF\xBF\xBD(");                          // truncated
  EXPECT_EQ(XmlEscape("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate

  // A run whose error holds every kind of bad character still validates.
  v1::Result r;
  r.set_scenario("odd <name> & \"quotes\"");
  v1::Run* run = r.add_runs();
  run->add_errors(std::string("server: \x01\x1f\xff bad ]]> <![CDATA[ x", 26));
  const Validation v = Validate(RenderJUnit(r));
  EXPECT_EQ(v.exit_code, 0) << v.output << RenderJUnit(r);
}

}  // namespace
}  // namespace synq::controller::result
