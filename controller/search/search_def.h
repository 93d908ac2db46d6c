// A scenario's `search:` section in memory: which flood's rate is searched for the knee, by which
// criterion, and the bounds of the doubling and bisection (controller/search/knee_search.h).
#pragma once

#include <chrono>
#include <string>

namespace synq::controller {

enum class SearchCriterion {
  kNdr,  // no drop rate: no failed attempt, no dropped launch, no server-side drop
  kPdr,  // partial drop rate: losses within `loss_percent` of the scheduled attempts
};

struct SearchDef {
  std::string flood;  // the flood whose rate is searched; its other fields stay as written
  SearchCriterion criterion = SearchCriterion::kNdr;
  double loss_percent = 0;                                  // pdr only
  std::chrono::nanoseconds trial{std::chrono::seconds(3)};  // each trial's launch window
  double start = 500;                                       // connects/s of the first trial
  double max = 100000;  // the doubling never goes past this rate
  // The bisection stops when hi - lo <= precision (connects/s), or, with `precision_is_percent`,
  // when hi - lo <= precision % of hi.
  double precision = 50;
  bool precision_is_percent = false;
};

// "ndr" / "pdr".
const char* CriterionName(SearchCriterion c);

}  // namespace synq::controller
