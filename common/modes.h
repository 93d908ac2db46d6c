// Kinds that the scenario (controller) and the data plane (agent) share, one definition each.
#pragma once

namespace synq::common {

// What a listener does with connections in its accept queue.
enum class AcceptMode { kNever, kPaced, kImmediate };

// How link shaping is done: netem through rtnetlink, the NFQUEUE delayer, or netem when present.
enum class ShapingBackend { kAuto, kNetem, kNfqueue };

// What a flood does with an established connection: hold it to the end of the run, or close it
// `lifetime` after connect with SO_LINGER 0 (RST, no TIME_WAIT) or normally (FIN).
enum class CloseMode { kKeep, kRst, kFin };

}  // namespace synq::common
