// One problem in a scenario file, named by the path of the field it is about.
#pragma once

#include <string>

namespace synq::controller {

// The field path ("floods[0].target", "listeners.l1.backlog") and why it is wrong.
struct ScenarioError {
  std::string path;
  std::string message;
  std::string ToString() const { return path + ": " + message; }
};

}  // namespace synq::controller
