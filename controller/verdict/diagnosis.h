// The diagnosis: a run's outcomes explained in plain words, each statement citing the figures it
// rests on (outcomes, fates, counters, settings, listeners, latencies) and naming the setting
// that would change the outcome. Reads only the typed result; states nothing it did not observe.
#pragma once

#include <string>
#include <vector>

#include "synq/result/v1/result.pb.h"

namespace synq::controller::verdict {

// Stable rule ids (Finding.rule). Scripts and tests may match on them.
inline constexpr char kRuleAllEstablished[] = "all_established";
inline constexpr char kRuleSomaxconnCap[] = "somaxconn_cap";
inline constexpr char kRuleBacklogNegative[] = "backlog_negative";
inline constexpr char kRuleAcceptQueueOverflow[] = "accept_queue_overflow";
inline constexpr char kRuleSynQueueFullNoCookies[] = "syn_queue_full_no_cookies";
inline constexpr char kRuleSyncookiesSent[] = "syncookies_sent";
inline constexpr char kRuleUnknownToServer[] = "unknown_to_server";
inline constexpr char kRuleFinalAckRst[] = "final_ack_overflow_rst";
inline constexpr char kRuleFinalAckSynackRetries[] = "final_ack_overflow_synack_retries";
inline constexpr char kRuleAbortOnOverflowIdle[] = "abort_on_overflow_idle";
inline constexpr char kRuleSynRetransmitBands[] = "syn_retransmit_bands";
inline constexpr char kRuleTimedOut[] = "timed_out";
inline constexpr char kRuleRefused[] = "refused";
inline constexpr char kRulePortsExhausted[] = "ports_exhausted";
inline constexpr char kRuleFdLimit[] = "fd_limit";
inline constexpr char kRuleConnectErrors[] = "connect_errors";
inline constexpr char kRulePacedAccept[] = "paced_accept";
inline constexpr char kRuleServerNotObserved[] = "server_not_observed";
inline constexpr char kRuleHostFailed[] = "host_failed";

// The findings for one run, in reading order: listeners' limits first, then what was dropped
// and why, then what the clients saw. Deterministic for a given run. Never fails: a part of the
// run that is missing (a failed host, a server synq did not start) yields a finding saying what
// cannot be told instead of a guess.
std::vector<::synq::result::v1::Finding> Diagnose(const ::synq::result::v1::Run& run);

// The diagnosis for the terminal, printed under the table: a header naming the run (and its
// sweep params), then one numbered statement a line with its remedy below it. Uses
// run.diagnosis() when it is set, else Diagnose(run). Ends with a newline; empty findings give
// a single line saying there is nothing to explain.
std::string RenderDiagnosis(const ::synq::result::v1::Run& run);

// Formats a figure for the text: integers without decimals, others with at most one decimal
// ("12", "401.5"). Exposed for the report renderers.
std::string FormatFigure(double value);

}  // namespace synq::controller::verdict
