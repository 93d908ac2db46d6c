// Packs what a flood completion needs into io_uring's 64-bit user_data: op, slot, generation.
#pragma once

#include <cstdint>

namespace synq::agent::flood {

// Layout (as liburing's examples/proxy.h packs op/fd/bid):
//   bits 63..56  op          (never 0, so a zero or liburing-internal user_data is not ours)
//   bits 55..32  slot index  (24 bits)
//   bits 31..0   generation  (bumped each time a slot is recycled, so completions of an earlier
//                             occupant of the slot are recognized and ignored)
enum class Op : uint8_t {
  kConnect = 1,
  kLinkTimeout = 2,
  kSend = 3,
  kPoll = 4,
  kCancel = 5,
};

inline constexpr uint32_t kMaxSlots = uint32_t{1} << 24;

struct UserData {
  Op op;
  uint32_t slot;
  uint32_t generation;
};

constexpr uint64_t PackUserData(Op op, uint32_t slot, uint32_t generation) {
  return (uint64_t{static_cast<uint8_t>(op)} << 56) | (uint64_t{slot & (kMaxSlots - 1)} << 32) |
         generation;
}

constexpr UserData UnpackUserData(uint64_t user_data) {
  return UserData{static_cast<Op>(user_data >> 56),
                  static_cast<uint32_t>((user_data >> 32) & (kMaxSlots - 1)),
                  static_cast<uint32_t>(user_data)};
}

// True for the ops above; false for anything else (e.g. liburing's LIBURING_UDATA_TIMEOUT).
constexpr bool IsFloodOp(Op op) {
  return static_cast<uint8_t>(op) >= static_cast<uint8_t>(Op::kConnect) &&
         static_cast<uint8_t>(op) <= static_cast<uint8_t>(Op::kCancel);
}

}  // namespace synq::agent::flood
