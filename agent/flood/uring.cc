#include "agent/flood/uring.h"

#include <cerrno>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace synq::agent::flood {
namespace {

struct RequiredOp {
  int opcode;
  const char* name;
};

// TIMEOUT: io_uring_wait_cqe_timeout() queues one on kernels without IORING_FEAT_EXT_ARG (<5.11).
// ASYNC_CANCEL: held sockets' polls (and, on stop, connects) are cancelled before teardown.
constexpr RequiredOp kRequiredOps[] = {
    {IORING_OP_CONNECT, "IORING_OP_CONNECT"}, {IORING_OP_LINK_TIMEOUT, "IORING_OP_LINK_TIMEOUT"},
    {IORING_OP_SEND, "IORING_OP_SEND"},       {IORING_OP_POLL_ADD, "IORING_OP_POLL_ADD"},
    {IORING_OP_TIMEOUT, "IORING_OP_TIMEOUT"}, {IORING_OP_ASYNC_CANCEL, "IORING_OP_ASYNC_CANCEL"},
};

}  // namespace

void Uring::Deleter::operator()(io_uring* ring) const {
  io_uring_queue_exit(ring);
  delete ring;
}

absl::StatusOr<Uring> Uring::Create(unsigned sq_entries, unsigned cq_entries) {
  // Heap-allocated so moving the owner never moves the struct liburing set up.
  auto raw = std::make_unique<io_uring>();
  io_uring_params params{};
  params.flags = IORING_SETUP_CQSIZE;
  params.cq_entries = cq_entries;
  const int ret = io_uring_queue_init_params(sq_entries, raw.get(), &params);
  if (ret < 0) return absl::ErrnoToStatus(-ret, "io_uring_queue_init_params");
  auto exit_ring = absl::MakeCleanup([&raw] { io_uring_queue_exit(raw.get()); });

  io_uring_probe* probe = io_uring_get_probe_ring(raw.get());
  if (probe == nullptr) {
    return absl::FailedPreconditionError(
        "io_uring cannot probe its opcodes (IORING_REGISTER_PROBE needs Linux 5.6)");
  }
  absl::Cleanup free_probe = [probe] { io_uring_free_probe(probe); };
  for (const RequiredOp& op : kRequiredOps) {
    if (!io_uring_opcode_supported(probe, op.opcode)) {
      return absl::FailedPreconditionError(
          absl::StrCat("io_uring on this kernel lacks ", op.name, ", which a flood needs"));
    }
  }

  std::move(exit_ring).Cancel();
  return Uring(std::unique_ptr<io_uring, Deleter>(raw.release()));
}

io_uring_sqe* Uring::GetSqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
  if (sqe != nullptr) return sqe;
  if (Submit() < 0) return nullptr;
  return io_uring_get_sqe(ring_.get());
}

bool Uring::Reserve(unsigned n) {
  if (io_uring_sq_space_left(ring_.get()) >= n) return true;
  if (Submit() < 0) return false;
  return io_uring_sq_space_left(ring_.get()) >= n;
}

int Uring::Submit() {
  int ret;
  do {
    ret = io_uring_submit(ring_.get());
  } while (ret == -EINTR);
  return ret;
}

}  // namespace synq::agent::flood
