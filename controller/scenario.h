// Forwarding header: the scenario model lives in controller/scenario/scenario.h.
#pragma once

#include "controller/scenario/scenario.h"  // IWYU pragma: export
