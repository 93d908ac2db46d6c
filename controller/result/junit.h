// The result as a JUnit XML report (`--junit FILE`) for CI systems (Jenkins, GitLab, GitHub):
// the element and attribute set of the Jenkins/Ant JUnit schema (tests/data/junit/junit.xsd).
#pragma once

#include <string>

#include "controller/result/escape.h"
#include "synq/result/v1/result.pb.h"

namespace synq::controller::result {

// One <testsuite> per run, named "<scenario> [<params>]" (or "<scenario> run <index>"), holding:
//   - "run completed": a <failure type="run_error"> listing Run.errors when there are any;
//   - one testcase per expectation, named by its expression; a failed one has a <failure
//     type="expectation"> whose message gives each failed comparison with both values
//     ("floods.f1.established == 17: 9 == 17 is false"), or the evaluation error;
//   - one testcase per baseline check, named "baseline <field>"; a regression has a <failure
//     type="baseline_regression"> with field, both values, change and tolerance; a run that
//     matched no baseline run has one "baseline" testcase marked <skipped> with the reason.
// Text is XML-escaped; characters XML 1.0 cannot carry are written as U+FFFD.
std::string RenderJUnit(const synq::result::v1::Result& result);

}  // namespace synq::controller::result
