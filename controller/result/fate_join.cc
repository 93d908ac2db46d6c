#include "controller/result/fate_join.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"

namespace synq::controller::result {

namespace av1 = ::synq::agent::v1;

const char* FateName(Fate fate) {
  switch (fate) {
    case Fate::kAccepted:
      return "accepted";
    case Fate::kQueued:
      return "queued";
    case Fate::kSynRecv:
      return "syn_recv";
    case Fate::kUnknownToServer:
      return "unknown_to_server";
    case Fate::kReset:
      return "reset";
    case Fate::kRefused:
      return "refused";
    case Fate::kTimedOut:
      return "timed_out";
    case Fate::kError:
      return "error";
    case Fate::kEstablishedUnjoined:
      return "established_unjoined";
  }
  return "error";
}

void FateJoin::AddServerSockets(const av1::CollectResultsResponse& collected) {
  for (const auto& s : collected.server_sockets()) by_tuple_[{s.local(), s.remote()}] = s;
}

Fate FateJoin::Of(const av1::ConnectionRecord& attempt, bool server_observed) const {
  switch (attempt.outcome()) {
    case av1::OUTCOME_ESTABLISHED:
      break;
    case av1::OUTCOME_RESET:
      return Fate::kReset;
    case av1::OUTCOME_REFUSED:
      return Fate::kRefused;
    case av1::OUTCOME_TIMED_OUT:
      return Fate::kTimedOut;
    default:
      // An orderly close read on an established connection (EOF) means the server application
      // closed it: a socket still in the accept queue is never FIN-closed (the kernel resets it
      // when its listener goes), so an observed server accepted it, whatever is left of the
      // socket now (FIN_WAIT2, TIME_WAIT, or gone).
      if (server_observed && attempt.error_name() == "EOF") return Fate::kAccepted;
      return Fate::kError;
  }
  return OfEstablished(attempt.local(), attempt.remote(), server_observed);
}

Fate FateJoin::OfEstablished(const std::string& local, const std::string& remote,
                             bool server_observed) const {
  // The server's local/remote are the client's remote/local.
  auto it = by_tuple_.find({remote, local});
  if (it == by_tuple_.end()) {
    return server_observed ? Fate::kUnknownToServer : Fate::kEstablishedUnjoined;
  }
  const av1::ServerSocket& s = it->second;
  if (s.state() == av1::TCP_STATE_SYN_RECV || s.state() == av1::TCP_STATE_NEW_SYN_RECV) {
    return Fate::kSynRecv;
  }
  return s.accepted() ? Fate::kAccepted : Fate::kQueued;
}

void FateJoin::CountHeld(const av1::FloodResult& flood, bool server_observed,
                         synq::result::v1::Fates* fates) const {
  auto add = [](uint32_t n, uint64_t more) {
    return static_cast<uint32_t>(std::min<uint64_t>(n + more, UINT32_MAX));
  };
  fates->set_reset(add(fates->reset(), flood.reset()));
  fates->set_refused(add(fates->refused(), flood.refused()));
  fates->set_timed_out(add(fates->timed_out(), flood.timed_out()));
  uint64_t errors = 0;
  for (const auto& [name, n] : flood.errors()) {
    // EOF on an established connection: the server application closed it, so an observed
    // server accepted it (as Of() says for one record).
    if (server_observed && name == "EOF") {
      fates->set_accepted(add(fates->accepted(), n));
    } else {
      errors += n;
    }
  }
  fates->set_error(add(fates->error(), errors));
  for (const av1::HeldConnections& held : flood.held()) {
    const bool v6 = held.local_ip().find(':') != std::string::npos;
    const std::string prefix =
        v6 ? absl::StrCat("[", held.local_ip(), "]:") : absl::StrCat(held.local_ip(), ":");
    for (uint32_t port : held.local_ports()) {
      CountFate(OfEstablished(absl::StrCat(prefix, port), held.remote(), server_observed), fates);
    }
  }
}

void CountFate(Fate fate, synq::result::v1::Fates* fates) {
  switch (fate) {
    case Fate::kAccepted:
      fates->set_accepted(fates->accepted() + 1);
      break;
    case Fate::kQueued:
      fates->set_queued(fates->queued() + 1);
      break;
    case Fate::kSynRecv:
      fates->set_syn_recv(fates->syn_recv() + 1);
      break;
    case Fate::kUnknownToServer:
      fates->set_unknown_to_server(fates->unknown_to_server() + 1);
      break;
    case Fate::kReset:
      fates->set_reset(fates->reset() + 1);
      break;
    case Fate::kRefused:
      fates->set_refused(fates->refused() + 1);
      break;
    case Fate::kTimedOut:
      fates->set_timed_out(fates->timed_out() + 1);
      break;
    case Fate::kError:
      fates->set_error(fates->error() + 1);
      break;
    case Fate::kEstablishedUnjoined:
      fates->set_established_unjoined(fates->established_unjoined() + 1);
      break;
  }
}

}  // namespace synq::controller::result
