// The flood fields a file may write as a map or a list rather than a scalar: `rate` as a ramp
// {from, to, over} or as steps {steps: [...], each}, and `sources` as a list of addresses.
// Scalars (`rate: 2000`, `sources: 4`) go through the flood field table like every other field.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

#include "controller/scenario/scenario.h"
#include "controller/scenario/scenario_error.h"

namespace synq::controller::scenario {

// Reads `key` of a flood when its value is a map or a list it knows (rate, sources) into
// `def`, appending errors named by `path` ("floods.f1.rate.to: ..."). Returns false when the
// value is for the field table instead (a scalar, or a key it does not handle).
bool ParseFloodNode(const std::string& key, const YAML::Node& value, const std::string& path,
                    FloodDef& def, std::vector<ScenarioError>& errors);

}  // namespace synq::controller::scenario
