// Proves agent label syntax (Kubernetes' label rules, so node names and node labels pass through
// unchanged), KEY=VALUE parsing with errors that say what is wrong, and select matching: every
// selected key present with the same value.
#include "common/labels.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace synq::common {
namespace {

using ::testing::HasSubstr;

TEST(Labels, AcceptsKubernetesKeysAndValues) {
  for (const char* key :
       {"zone", "node", "topology.kubernetes.io/zone", "a", "rack_1.b-2", "example.com/x"}) {
    EXPECT_TRUE(CheckLabelKey(key).ok()) << key;
  }
  for (const char* value : {"", "us-east-1a", "worker-3", "A.b_c", "1"}) {
    EXPECT_TRUE(CheckLabelValue(value).ok()) << value;
  }
}

TEST(Labels, RefusesBadKeysAndValuesSayingWhy) {
  EXPECT_THAT(CheckLabelKey("").message(), HasSubstr("the name must be 1-63 characters"));
  EXPECT_THAT(CheckLabelKey("-zone").message(), HasSubstr("starting and ending alphanumeric"));
  EXPECT_THAT(CheckLabelKey(std::string(64, 'a')).message(), HasSubstr("1-63"));
  EXPECT_THAT(CheckLabelKey("Example.com/zone").message(), HasSubstr("DNS subdomain"));
  EXPECT_THAT(CheckLabelKey("/zone").message(), HasSubstr("DNS subdomain"));
  EXPECT_THAT(CheckLabelKey("a..b/zone").message(), HasSubstr("DNS subdomain"));
  EXPECT_THAT(CheckLabelKey("k8s.io/").message(), HasSubstr("the name must be"));
  EXPECT_THAT(CheckLabelValue("a b").message(), HasSubstr("label value 'a b'"));
  EXPECT_THAT(CheckLabelValue("x-").message(), HasSubstr("ending alphanumeric"));
  EXPECT_FALSE(CheckLabelValue(std::string(64, 'v')).ok());
}

TEST(Labels, ParsesKeyEqualsValue) {
  auto zone = ParseLabel("topology.kubernetes.io/zone=eu-west-1b");
  ASSERT_TRUE(zone.ok()) << zone.status();
  EXPECT_EQ(zone->first, "topology.kubernetes.io/zone");
  EXPECT_EQ(zone->second, "eu-west-1b");
  auto empty = ParseLabel("canary=");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->second, "");
  EXPECT_THAT(ParseLabel("zone").status().message(), HasSubstr("expected KEY=VALUE"));
  EXPECT_THAT(ParseLabel("=a").status().message(), HasSubstr("label key ''"));
  EXPECT_THAT(ParseLabel("zone=a=b").status().message(), HasSubstr("label value 'a=b'"));
}

TEST(Labels, SelectMatchesWhenEverySelectedKeyHasItsValue) {
  const Labels labels = {{"zone", "a"}, {"node", "w1"}};
  EXPECT_TRUE(LabelsMatch(labels, {}));
  EXPECT_TRUE(LabelsMatch(labels, {{"zone", "a"}}));
  EXPECT_TRUE(LabelsMatch(labels, {{"zone", "a"}, {"node", "w1"}}));
  EXPECT_FALSE(LabelsMatch(labels, {{"zone", "b"}}));
  EXPECT_FALSE(LabelsMatch(labels, {{"rack", "a"}}));
  EXPECT_FALSE(LabelsMatch({}, {{"zone", "a"}}));
  EXPECT_EQ(FormatLabels(labels), "node=w1,zone=a");
  EXPECT_EQ(FormatLabels({}), "");
}

}  // namespace
}  // namespace synq::common
