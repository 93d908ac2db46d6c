// The scenario's `expect:` lines: checked before a run (paths, syntax, types), evaluated on each
// run's typed result, and shown as a PASS/FAIL table.
//
// Grammar (controller/verdict/expression.h): numbers, field paths, + - * /, min(), max(), abs(),
// parentheses, == != < <= > >=, and/or (&&, ||). Paths: floods.NAME.FIELD[.SUB],
// listeners.NAME.FIELD, hosts.NAME.FIELD (counters.<nstat name>, settings.<sysctl>,
// drop_events.<event>), run-level numbers (start_skew_ms, start_lateness_ms, duration_ms), and
// params.<sweep path>. Equality is exact on doubles: the counts compared are integers.
#pragma once

#include <string>
#include <vector>

#include "controller/scenario.h"
#include "controller/scenario_loader.h"
#include "synq/result/v1/result.pb.h"

namespace synq::controller::verdict {

// Every problem of the scenario's expectations, none when they can be evaluated on any run:
// syntax, unknown functions, operands of and/or that are not comparisons, paths that do not name
// a number (unknown flood/listener/host, unknown field, a path ending at a message, params of a
// path that is not a sweep axis). Each error's path is the expectation's ("expect[1]"); its
// message starts with the bad path and what exists there and ends with the expression.
std::vector<ScenarioError> CheckExpectations(const Scenario& scenario);

// Replaces run->expectations with the scenario's expectations evaluated on `run`: passed, each
// comparison with both sides' values, every path read with its value. A value that cannot be
// read (not_observed, a flood missing because the run failed) or a division by zero sets
// `error` and passed = false.
void EvaluateExpectations(const Scenario& scenario, result::v1::Run* run);

// True when every expectation of every run passed (also when there are none).
bool ExpectationsPassed(const result::v1::Result& result);

// One line per expectation of `run`, e.g.
//   "FAIL  floods.f1.established == listeners.l1.backlog_effective + 1   (12 == 5)"
// with the error instead of the values for one that could not be evaluated; "" when none.
std::string RenderExpectations(const result::v1::Run& run);

}  // namespace synq::controller::verdict
