// Fuzzes the agent's checks and conversions of every request message (agent/service/requests.h)
// without gRPC: the first byte picks the message type, the rest is its wire encoding. Whatever
// arrives gives engine specs within the bounds of common/limits.h or InvalidArgument; a flood
// that converts is then judged by the engine's own ValidateFloodSpec and schedule maths, as a run
// would.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "agent/flood/flood_engine.h"
#include "agent/service/requests.h"
#include "common/limits.h"

namespace {

namespace v1 = ::synq::agent::v1;

void Check(bool ok) {
  if (!ok) std::abort();
}

void Expect(const absl::Status& status) {
  Check(status.ok() || status.code() == absl::StatusCode::kInvalidArgument);
}

template <typename Message>
bool Parse(const uint8_t* data, size_t size, Message& message) {
  return message.ParseFromArray(data, static_cast<int>(size));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace synq;
  using namespace synq::agent;
  if (size == 0) return 0;
  const uint8_t kind = data[0] % 6;
  ++data;
  --size;
  switch (kind) {
    case 0: {
      v1::BeginRunRequest r;
      if (!Parse(data, size, r)) return 0;
      absl::StatusOr<BeginRunSpec> spec = ToBeginRun(r);
      Expect(spec.status());
      if (spec.ok()) {
        Check(spec->sample_interval >= common::kMinSampleInterval);
        Check(spec->lease >= std::chrono::nanoseconds(0) && spec->lease <= common::kMaxLease);
      }
      break;
    }
    case 1: {
      v1::ApplySettingsRequest r;
      if (!Parse(data, size, r)) return 0;
      Expect(ToSettings(r).status());
      break;
    }
    case 2: {
      v1::ApplyShapingRequest r;
      if (!Parse(data, size, r)) return 0;
      absl::StatusOr<std::vector<ShapingRequest>> specs = ToShapingRequests(r);
      Expect(specs.status());
      if (specs.ok()) {
        for (const ShapingRequest& s : *specs) {
          Check(s.delay >= std::chrono::nanoseconds(0) && s.delay <= common::kMaxShapingDelay);
        }
      }
      break;
    }
    case 3: {
      v1::StartListenerRequest r;
      if (!Parse(data, size, r)) return 0;
      absl::StatusOr<ListenerSpec> spec = ToListenerSpec(r);
      Expect(spec.status());
      break;
    }
    case 4: {
      v1::ObserveListenerRequest r;
      if (!Parse(data, size, r)) return 0;
      Expect(ToObserveSpec(r).status());
      break;
    }
    case 5: {
      v1::StartFloodsRequest r;
      if (!Parse(data, size, r)) return 0;
      absl::StatusOr<FloodsSpec> spec = ToFloodsSpec(r);
      Expect(spec.status());
      if (!spec.ok()) return 0;
      for (const FloodSpec& f : spec->floods) {
        Check(f.payload.size() <= common::kMaxPayloadBytes);
        Check(f.connect_timeout <= common::kMaxConnectTimeout);
        if (!ValidateFloodSpec(f).ok()) continue;
        const uint64_t attempts = ScheduledAttempts(f);
        if (f.connections > 0) Check(attempts <= f.connections);
      }
      break;
    }
  }
  return 0;
}
