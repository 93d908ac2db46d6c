// Joins client connection attempts with the server's sockets by 4-tuple: what became of each
// connection the client thinks it has (accepted, queued, syn_recv, unknown_to_server).
#pragma once

#include <map>
#include <string>
#include <utility>

#include "synq/agent/v1/agent.pb.h"
#include "synq/result/v1/result.pb.h"

namespace synq::controller::result {

enum class Fate {
  kAccepted,
  kQueued,
  kSynRecv,
  kUnknownToServer,
  kReset,
  kRefused,
  kTimedOut,
  kError,
  // Established, but the server side was not observed (a server synq did not start).
  kEstablishedUnjoined,
};

// The Fates field name of a fate ("unknown_to_server").
const char* FateName(Fate fate);

class FateJoin {
 public:
  // Indexes every server socket seen at collection time, from every host.
  void AddServerSockets(const agent::v1::CollectResultsResponse& collected);

  // The fate of one attempt. `server_observed`: the attempt's target is a listener (synq's own
  // or observed) whose host reported its sockets; only then can "the server has no state for
  // it" be stated. A server socket counts as accepted as its agent reported it (for observed
  // listeners: agent/run/observed_listener.cc maps each server-side state); an attempt that
  // read EOF was closed by the server application, so accepted.
  Fate Of(const agent::v1::ConnectionRecord& attempt, bool server_observed) const;

  // The fates of a whole flood without per-connection records: failures from the flood's
  // counters (EOF errors towards an observed server count as accepted, as in Of()), and each
  // connection still held at the end (FloodResult.held: local address,
  // packed local ports, remote) joined with the server's sockets. Connections the flood closed
  // itself after `lifetime` have no fate (counted in Flood.closed). Memory is bounded by the
  // held connections, never by the attempts.
  void CountHeld(const agent::v1::FloodResult& flood, bool server_observed,
                 synq::result::v1::Fates* fates) const;

  // The fate of one established connection, by its two ends ("ip:port", IPv6 in brackets).
  Fate OfEstablished(const std::string& local, const std::string& remote,
                     bool server_observed) const;

 private:
  // (server local, server remote) -> socket; the client's (remote, local).
  std::map<std::pair<std::string, std::string>, agent::v1::ServerSocket> by_tuple_;
};

// Adds one attempt's fate to the counts.
void CountFate(Fate fate, synq::result::v1::Fates* fates);

}  // namespace synq::controller::result
