// Uring: move-only owner of one io_uring, created only if the kernel has the opcodes a flood uses.
#pragma once

#include <liburing.h>

#include <memory>

#include "absl/status/statusor.h"

namespace synq::agent::flood {

class Uring {
 public:
  // Sets up a ring with `sq_entries` submission and `cq_entries` completion entries and probes
  // for CONNECT, LINK_TIMEOUT, SEND, POLL_ADD, TIMEOUT and ASYNC_CANCEL. A kernel without
  // io_uring yields the errno's status (ENOSYS: Unimplemented, EPERM: PermissionDenied); a
  // missing opcode is FailedPrecondition naming it.
  static absl::StatusOr<Uring> Create(unsigned sq_entries, unsigned cq_entries);

  Uring(Uring&&) noexcept = default;
  Uring& operator=(Uring&&) noexcept = default;
  Uring(const Uring&) = delete;
  Uring& operator=(const Uring&) = delete;
  ~Uring() = default;

  io_uring* get() { return ring_.get(); }

  // A free SQE, submitting what is queued first if the SQ is full; nullptr if there is still
  // none (the kernel refused the submit, e.g. -EBUSY while the CQ overflows).
  io_uring_sqe* GetSqe();
  // Makes sure `n` SQEs can be taken without an intervening submit (a linked pair must go to the
  // kernel in one submit). False if they cannot be freed.
  bool Reserve(unsigned n);
  // io_uring_submit: number submitted or -errno.
  int Submit();

 private:
  struct Deleter {
    void operator()(io_uring* ring) const;
  };
  explicit Uring(std::unique_ptr<io_uring, Deleter> ring) : ring_(std::move(ring)) {}

  std::unique_ptr<io_uring, Deleter> ring_;
};

}  // namespace synq::agent::flood
