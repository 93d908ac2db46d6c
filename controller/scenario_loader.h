// Forwarding header: loading (controller/scenario/loader.h), sweeps (controller/scenario/sweep.h)
// and ParseDuration (controller/scenario/values.h).
#pragma once

#include "controller/scenario/loader.h"  // IWYU pragma: export
#include "controller/scenario/sweep.h"   // IWYU pragma: export
#include "controller/scenario/values.h"  // IWYU pragma: export
