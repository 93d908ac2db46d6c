// The kernel counters (nstat names) that explain handshake outcomes: one list, in the order a
// reader wants them (accept-queue overflow, SYN-queue overflow, cookies, retransmits, resets,
// opens), for the table, the report and the baseline comparison.
#pragma once

namespace synq::controller::result {

struct HandshakeCounter {
  const char* name;
  bool compared;  // a baseline compares it (a change in it is a change in outcome)
};

inline constexpr HandshakeCounter kHandshakeCounters[] = {
    {"TcpExtListenOverflows", true},
    {"TcpExtListenDrops", true},
    {"TcpExtTCPReqQFullDrop", true},
    {"TcpExtTCPReqQFullDoCookies", true},
    {"TcpExtSyncookiesSent", true},
    {"TcpExtSyncookiesRecv", true},
    {"TcpExtSyncookiesFailed", true},
    {"TcpExtTCPSynRetrans", true},
    {"TcpExtTCPTimeouts", false},
    {"TcpRetransSegs", false},
    {"TcpOutRsts", true},
    {"TcpEstabResets", false},
    {"TcpAttemptFails", true},
    {"TcpExtTCPAbortOnData", false},
    {"TcpExtTCPAbortOnClose", false},
    {"TcpExtTCPAbortOnTimeout", false},
    {"TcpActiveOpens", false},
    {"TcpPassiveOpens", false},
};

}  // namespace synq::controller::result
