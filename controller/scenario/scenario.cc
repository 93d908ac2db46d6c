#include "controller/scenario/scenario.h"

namespace synq::controller {

const HostSpec* Scenario::FindHost(const std::string& name) const {
  for (const HostSpec& host : hosts) {
    if (host.name == name) return &host;
  }
  return nullptr;
}

// Listener names are unique in a valid scenario; on a duplicate the first one wins, matching
// the loader (which reports the duplicate).
const ListenerDef* Scenario::FindListener(const std::string& name) const {
  for (const ListenerDef& listener : listeners) {
    if (listener.name == name) return &listener;
  }
  return nullptr;
}

const ObserveDef* Scenario::FindObserved(const std::string& name) const {
  for (const ObserveDef& observed : observes) {
    if (observed.name == name) return &observed;
  }
  return nullptr;
}

}  // namespace synq::controller
