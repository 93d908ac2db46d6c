// Proves that the `search:` section is parsed with its defaults, that a percentage precision and
// a pdr loss are read as such, and that every bad field is an error naming it: unknown fields,
// criterion, loss without pdr and pdr without loss, bounds, precision, the flood, and a sweep that
// would set what each trial sets.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "controller/scenario_loader.h"

namespace synq::controller {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kBase[] = R"(
name: s
listeners: [{ name: l1, backlog: 16, accept: paced, accept_interval: 2ms }]
floods: [{ name: f1, target: l1, concurrency: 100 }]
)";

std::vector<std::string> Errors(const std::string& yaml) {
  std::vector<std::string> out;
  for (const ScenarioError& e : LoadScenario(yaml).errors) out.push_back(e.ToString());
  return out;
}

TEST(SearchSection, DefaultsAndTheOnlyFlood) {
  const LoadResult r = LoadScenario(std::string(kBase) + "search: {}\n");
  ASSERT_TRUE(r.ok()) << r.errors[0].ToString();
  ASSERT_TRUE(r.scenario.search.has_value());
  const SearchDef& d = *r.scenario.search;
  EXPECT_EQ(d.flood, "f1");
  EXPECT_EQ(d.criterion, SearchCriterion::kNdr);
  EXPECT_EQ(d.trial, std::chrono::seconds(3));
  EXPECT_EQ(d.start, 500);
  EXPECT_EQ(d.max, 100000);
  EXPECT_EQ(d.precision, 50);
  EXPECT_FALSE(d.precision_is_percent);
}

TEST(SearchSection, EveryFieldRead) {
  const LoadResult r = LoadScenario(std::string(kBase) + R"(search:
  flood: f1
  criterion: pdr
  loss: 0.5%
  trial: 2s
  start: 250
  max: 8000
  precision: 2%
)");
  ASSERT_TRUE(r.ok()) << r.errors[0].ToString();
  const SearchDef& d = *r.scenario.search;
  EXPECT_EQ(d.criterion, SearchCriterion::kPdr);
  EXPECT_DOUBLE_EQ(d.loss_percent, 0.5);
  EXPECT_EQ(d.trial, std::chrono::seconds(2));
  EXPECT_EQ(d.start, 250);
  EXPECT_EQ(d.max, 8000);
  EXPECT_EQ(d.precision, 2);
  EXPECT_TRUE(d.precision_is_percent);
}

TEST(SearchSection, NoSearchSectionMeansNoSearch) {
  EXPECT_FALSE(LoadScenario(kBase).scenario.search.has_value());
}

TEST(SearchSection, BadFieldsAreErrorsNamingTheField) {
  auto errors = [](const std::string& search) {
    return Errors(std::string(kBase) + "search: " + search + "\n");
  };
  EXPECT_THAT(errors("{ speed: 3 }"), Contains(HasSubstr("search.speed: unknown field")));
  EXPECT_THAT(errors("{ criterion: fast }"), Contains(HasSubstr("search.criterion: expected ndr")));
  EXPECT_THAT(errors("{ loss: 1% }"),
              Contains(HasSubstr("search.loss: only used with criterion: pdr")));
  EXPECT_THAT(errors("{ criterion: pdr }"), Contains(HasSubstr("search.loss: required")));
  EXPECT_THAT(errors("{ criterion: pdr, loss: 100% }"),
              Contains(HasSubstr("search.loss: must lie")));
  EXPECT_THAT(errors("{ trial: 0s }"), Contains(HasSubstr("search.trial")));
  EXPECT_THAT(errors("{ trial: 700s }"),
              Contains(HasSubstr("search.trial: at most 600s per trial, got 700s")));
  EXPECT_THAT(errors("{ start: 0 }"), Contains(HasSubstr("search.start: must be more than 0")));
  EXPECT_THAT(errors("{ start: 1000, max: 500 }"),
              Contains(HasSubstr("search.max: must be at least start (1000), got 500")));
  EXPECT_THAT(errors("{ precision: -5 }"), Contains(HasSubstr("search.precision")));
  EXPECT_THAT(errors("{ precision: 0% }"), Contains(HasSubstr("search.precision: a percentage")));
  EXPECT_THAT(errors("{ flood: f9 }"),
              Contains(HasSubstr("search.flood: no flood named 'f9' (floods: f1)")));
  EXPECT_THAT(errors("[1, 2]"), Contains(HasSubstr("search: expected a map")));
}

TEST(SearchSection, FloodRequiredWhenThereAreSeveral) {
  const std::string yaml = R"(
name: s
listeners: [{ name: l1 }]
floods: [{ name: a, target: l1 }, { name: b, target: l1 }]
search: { start: 10 }
)";
  EXPECT_THAT(Errors(yaml),
              Contains(HasSubstr("search.flood: required: the scenario has 2 floods")));
}

TEST(SearchSection, SweepingWhatEveryTrialSetsIsAnError) {
  const std::string yaml = std::string(kBase) + R"(sweep:
  floods.f1.rate: [10, 20]
search: { flood: f1 }
)";
  EXPECT_THAT(
      Errors(yaml),
      Contains(HasSubstr("sweep.floods.f1.rate: the search sets floods.f1.rate in every trial")));
  const std::string ok = std::string(kBase) + R"(sweep:
  listeners.l1.backlog: [16, 64]
search: { flood: f1 }
)";
  EXPECT_THAT(Errors(ok), IsEmpty());
}

}  // namespace
}  // namespace synq::controller
