// The HTML report (`OUT/report.html`): one self-contained file, rendered from the typed result,
// with its plots drawn as inline SVG, that opens offline and fetches nothing.
#pragma once

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "controller/result/escape.h"
#include "synq/result/v1/result.pb.h"

namespace synq::controller::result {

// The whole report as one HTML document: a sweep overview (outcome bars per run) when there is
// more than one run, then per run its params, start skew/lateness, errors, expectations,
// diagnosis, baseline checks, the knee search (trials chart and table), outcomes and fates per
// flood, the connect-latency histogram on a log time axis with the SYN-retransmit instants shaded,
// accept-queue depth and SYN-RECV over time per listener, handshake counter deltas over time, and
// each host's kernel, settings and shaping. Every text from the result is escaped; the document
// references no URL (no scripts, styles, fonts or images from anywhere), and long series are
// downsampled to keep it small.
std::string RenderHtmlReport(const ::synq::result::v1::Result& result);

// When the SYN retransmits of a connect leave, in seconds from connect(), for the first `count`
// retransmits, given net.ipv4.tcp_syn_linear_timeouts (0 on kernels without it).
std::vector<double> SynRetransmitSeconds(int linear_timeouts, int count);

}  // namespace synq::controller::result
