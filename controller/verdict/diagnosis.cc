#include "controller/verdict/diagnosis.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/histogram.h"
#include "controller/result/format.h"
#include "controller/verdict/generator_rule.h"

namespace synq::controller::verdict {
namespace {

namespace v1 = ::synq::result::v1;

constexpr char kSomaxconn[] = "net.core.somaxconn";
constexpr char kAbortOnOverflow[] = "net.ipv4.tcp_abort_on_overflow";
constexpr char kSyncookies[] = "net.ipv4.tcp_syncookies";
constexpr char kSynackRetries[] = "net.ipv4.tcp_synack_retries";
constexpr char kSynRetries[] = "net.ipv4.tcp_syn_retries";

// The kernel's initial RTO for a SYN (TCP_TIMEOUT_INIT): a connect that completes about a whole
// number of seconds later than the fastest one had that many SYN timeouts.
constexpr double kInitialRtoUs = 1e6;
// How far from a whole second a connect may land and still count in that second's band.
constexpr double kBandHalfWidthUs = 0.25e6;

std::string F(double value) { return FormatFigure(value); }

// One finding under construction: evidence is added as the text cites it.
class Builder {
 public:
  explicit Builder(const char* rule) { finding_.set_rule(rule); }
  Builder& Host(const std::string& host) {
    finding_.set_host(host);
    return *this;
  }
  Builder& Listener(const std::string& listener) {
    finding_.set_listener(listener);
    return *this;
  }
  Builder& Flood(const std::string& flood) {
    finding_.set_flood(flood);
    return *this;
  }
  // Records the figure and returns it formatted, for the text.
  std::string Cite(const std::string& name, double value) {
    v1::Evidence* e = finding_.add_evidence();
    e->set_name(name);
    e->set_value(value);
    return F(value);
  }
  v1::Finding Done(std::string text, std::string remedy) {
    finding_.set_text(std::move(text));
    finding_.set_remedy(std::move(remedy));
    return std::move(finding_);
  }

 private:
  v1::Finding finding_;
};

double Counter(const v1::Host& host, const std::string& name) {
  auto it = host.counters().find(name);
  return it == host.counters().end() ? 0 : it->second;
}

// A setting in force on a host, when the agent read it back. (A plain struct rather than
// std::optional: GCC's -Wmaybe-uninitialized misfires on optional<int> at -O2.)
struct SettingValue {
  bool known = false;
  int32_t value = 0;
  explicit operator bool() const { return known; }
  int32_t operator*() const { return value; }
};

SettingValue Setting(const v1::Host& host, const std::string& key) {
  auto it = host.settings().find(key);
  if (it == host.settings().end()) return {};
  return {true, it->second};
}

std::string CounterPath(const std::string& host, const std::string& name) {
  return absl::StrCat("hosts.", host, ".counters.", name);
}
std::string SettingPath(const std::string& host, const std::string& key) {
  return absl::StrCat("hosts.", host, ".settings.", key);
}
std::string ListenerPath(const std::string& listener, const std::string& field) {
  return absl::StrCat("listeners.", listener, ".", field);
}
std::string FloodPath(const std::string& flood, const std::string& field) {
  return absl::StrCat("floods.", flood, ".", field);
}

double Median(const google::protobuf::RepeatedField<double>& values) {
  std::vector<double> v(values.begin(), values.end());
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// A host whose counters and sockets can be read: present and not failed.
const v1::Host* ObservedHost(const v1::Run& run, const std::string& name) {
  auto it = run.hosts().find(name);
  if (it == run.hosts().end() || !it->second.error().empty() ||
      !it->second.counters_unavailable().empty()) {
    return nullptr;
  }
  return &it->second;
}

// Client attempts the fate join matched with a server socket or request.
uint32_t Joined(const v1::Fates& fates) {
  return fates.accepted() + fates.queued() + fates.syn_recv() + fates.unknown_to_server();
}

// The listener a flood aimed at: the one it names; else the one whose address is its target;
// else, when the result does not say (an older result.json) but the fate join matched some of
// its attempts with a server, the run's only listener (the join can only have used that one).
std::string ListenerOf(const v1::Run& run, const v1::Flood& flood) {
  if (!flood.listener().empty()) return flood.listener();
  if (!flood.target().empty()) {
    for (const auto& [name, l] : run.listeners()) {
      if (l.ip() == flood.target_ip() && l.port() == flood.target_port()) {
        return name;
      }
    }
    return "";
  }
  if (run.listeners().size() == 1 && Joined(flood.fates()) > 0)
    return run.listeners().begin()->first;
  return "";
}

// Whether the server side of a flood was observed (its attempts could be joined).
bool ServerObserved(const v1::Flood& flood) { return flood.server_observed(); }

// The host a flood's SYNs go to: its listener's host, else a host of the run with that address.
std::string ServerHostOf(const v1::Run& run, const v1::Flood& flood) {
  const std::string listener = ListenerOf(run, flood);
  if (!listener.empty()) {
    auto it = run.listeners().find(listener);
    if (it != run.listeners().end()) return it->second.host();
  }
  const std::string& ip = flood.target_ip();
  for (const auto& [name, host] : run.hosts()) {
    if (!ip.empty() && host.address() == ip) return name;
  }
  return "";
}

std::vector<std::string> SortedKeys(const auto& map) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : map) keys.push_back(key);
  std::sort(keys.begin(), keys.end());
  return keys;
}

// Floods aimed at one listener, by name.
std::vector<std::string> FloodsInto(const v1::Run& run, const std::string& listener) {
  std::vector<std::string> out;
  for (const std::string& name : SortedKeys(run.floods())) {
    if (run.floods().at(name).members_size() > 0) continue;  // a group's sum: its members count
    if (ListenerOf(run, run.floods().at(name)) == listener) out.push_back(name);
  }
  return out;
}

std::vector<std::string> ListenersOn(const v1::Run& run, const std::string& host) {
  std::vector<std::string> out;
  for (const std::string& name : SortedKeys(run.listeners())) {
    if (run.listeners().at(name).host() == host) out.push_back(name);
  }
  return out;
}

bool RunsFloods(const v1::Run& run, const std::string& host) {
  for (const auto& [name, flood] : run.floods()) {
    if (flood.host() == host) return true;
  }
  return false;
}

const char* AcceptModeName(v1::AcceptMode mode) {
  switch (mode) {
    case v1::ACCEPT_MODE_NEVER:
      return "never";
    case v1::ACCEPT_MODE_PACED:
      return "paced";
    case v1::ACCEPT_MODE_IMMEDIATE:
      return "immediate";
    default:
      return "unknown";
  }
}

// The listeners on `host` whose accept queue was seen full (peak above the limit); when none
// was seen full (samples too coarse) but the host has exactly one listener, that one.
std::vector<std::string> FullListeners(const v1::Run& run, const std::string& host) {
  const std::vector<std::string> all = ListenersOn(run, host);
  std::vector<std::string> full;
  for (const std::string& name : all) {
    const v1::Listener& l = run.listeners().at(name);
    if (l.has_backlog_effective() && l.accept_queue_peak() > l.backlog_effective()) {
      full.push_back(name);
    }
  }
  if (full.empty() && all.size() == 1) return all;
  return full;
}

// ---------------------------------------------------------------------------------------------
// Listener rules.

void ListenerLimits(const v1::Run& run, std::vector<v1::Finding>& out) {
  for (const std::string& name : SortedKeys(run.listeners())) {
    const v1::Listener& l = run.listeners().at(name);
    if (!l.has_backlog_effective()) continue;  // not measured: nothing to say about the limit
    const v1::Host* host = ObservedHost(run, l.host());
    const SettingValue somaxconn = host != nullptr ? Setting(*host, kSomaxconn) : SettingValue{};
    if (l.backlog() < 0 && somaxconn && l.backlog_effective() == *somaxconn) {
      Builder b(kRuleBacklogNegative);
      b.Host(l.host()).Listener(name);
      const std::string backlog = b.Cite(ListenerPath(name, "backlog"), l.backlog());
      const std::string effective =
          b.Cite(ListenerPath(name, "backlog_effective"), l.backlog_effective());
      b.Cite(SettingPath(l.host(), kSomaxconn), *somaxconn);
      out.push_back(
          b.Done(absl::StrCat("listener ", name, ": listen(", backlog,
                              ") asks for the largest backlog, which the kernel takes as "
                              "net.core.somaxconn: backlog_effective ",
                              effective, "."),
                 absl::StrCat("net.core.somaxconn on ", l.host(), " sets this listener's limit.")));
    } else if (l.backlog() > l.backlog_effective() && somaxconn &&
               l.backlog_effective() == *somaxconn) {
      Builder b(kRuleSomaxconnCap);
      b.Host(l.host()).Listener(name);
      const std::string backlog = b.Cite(ListenerPath(name, "backlog"), l.backlog());
      const std::string effective =
          b.Cite(ListenerPath(name, "backlog_effective"), l.backlog_effective());
      b.Cite(SettingPath(l.host(), kSomaxconn), *somaxconn);
      out.push_back(b.Done(
          absl::StrCat("listener ", name, ": backlog ", backlog, " was capped to ", effective,
                       " by net.core.somaxconn (", F(*somaxconn), " on ", l.host(), ")."),
          absl::StrCat("Raise net.core.somaxconn on ", l.host(), " to at least ", backlog,
                       " for the backlog to take effect.")));
    }
  }
}

void PacedAccept(const v1::Run& run, std::vector<v1::Finding>& out) {
  for (const std::string& name : SortedKeys(run.listeners())) {
    const v1::Listener& l = run.listeners().at(name);
    if (l.accept() != v1::ACCEPT_MODE_PACED ||
        (l.accept_interval_ms() <= 0 && l.accept_rate() <= 0) || !l.has_backlog_effective()) {
      continue;
    }
    Builder b(kRulePacedAccept);
    b.Host(l.host()).Listener(name);
    std::string text;
    if (l.accept_rate() > 0) {
      text = absl::StrCat("listener ", name, " accepts ",
                          b.Cite(ListenerPath(name, "accept_rate"), l.accept_rate()),
                          " connections a second");
    } else {
      const std::string interval =
          b.Cite(ListenerPath(name, "accept_interval_ms"), l.accept_interval_ms());
      text = absl::StrCat("listener ", name, " accepts one connection every ", interval, " ms (",
                          F(1000.0 / l.accept_interval_ms()), " a second)");
    }
    std::vector<std::string> offered;
    for (const std::string& f : FloodsInto(run, name)) {
      const v1::Flood& flood = run.floods().at(f);
      if (flood.rate() > 0) {
        offered.push_back(
            absl::StrCat(f, " ", b.Cite(FloodPath(f, "rate"), flood.rate()), " a second"));
      }
    }
    if (!offered.empty()) absl::StrAppend(&text, " while ", absl::StrJoin(offered, ", "), " came");
    const std::string accepted = b.Cite(ListenerPath(name, "accepted"), l.accepted());
    const std::string peak = b.Cite(ListenerPath(name, "accept_queue_peak"), l.accept_queue_peak());
    const std::string effective =
        b.Cite(ListenerPath(name, "backlog_effective"), l.backlog_effective());
    absl::StrAppend(&text, ": it accepted ", accepted, ". ");
    const int32_t capacity = l.backlog_effective() + 1;
    if (l.accept_queue_peak() >= capacity) {
      absl::StrAppend(&text, "Between accepts the queue filled to its limit (peak ", peak,
                      " = backlog_effective ", effective,
                      " + 1), so arrivals beyond it were dropped until the next accept made room");
      const v1::Host* host = ObservedHost(run, l.host());
      const double overflows = host != nullptr ? Counter(*host, "TcpExtListenOverflows") : 0;
      if (overflows > 0) {
        absl::StrAppend(&text, " (TcpExtListenOverflows ",
                        b.Cite(CounterPath(l.host(), "TcpExtListenOverflows"), overflows), ")");
      }
      absl::StrAppend(&text, ".");
    } else {
      absl::StrAppend(&text, "The queue never filled (peak ", peak, " of backlog_effective ",
                      effective, " + 1).");
    }
    out.push_back(b.Done(std::move(text),
                         absl::StrCat(l.accept_rate() > 0 ? "A higher accept_rate on "
                                                          : "A shorter accept_interval on ",
                                      name,
                                      " (accepting faster) or a larger backlog to absorb the "
                                      "burst.")));
  }
}

// ---------------------------------------------------------------------------------------------
// Server rules: what the listening host's counters say was dropped, and why.

// Resets and fates of the floods into `listeners`, for the final-ACK rules.
struct FloodsSummary {
  std::vector<std::string> names;
  double reset = 0;
  double timed_out = 0;
  double syn_recv = 0;
};

FloodsSummary Summarize(const v1::Run& run, const std::vector<std::string>& listeners) {
  FloodsSummary s;
  for (const std::string& l : listeners) {
    for (const std::string& f : FloodsInto(run, l)) {
      const v1::Flood& flood = run.floods().at(f);
      s.names.push_back(f);
      s.reset += flood.reset();
      s.timed_out += flood.timed_out();
      s.syn_recv += flood.fates().syn_recv();
    }
  }
  return s;
}

// A listening host as its drop rules read it: its listeners, the ones seen full, and the
// accept-queue counters every rule cites.
struct ListeningHost {
  std::string name;
  const v1::Host* host = nullptr;
  std::vector<std::string> listeners;
  std::vector<std::string> full;  // FullListeners(): the listeners a drop is blamed on
  std::string which;              // "listener l1, l2" or "a listener on <host>", for the text
  double overflows = 0;           // TcpExtListenOverflows
};

ListeningHost ReadListeningHost(const v1::Run& run, const std::string& host_name,
                                const v1::Host& host) {
  ListeningHost s;
  s.name = host_name;
  s.host = &host;
  s.listeners = ListenersOn(run, host_name);
  s.full = FullListeners(run, host_name);
  s.which = s.full.empty() ? absl::StrCat("a listener on ", host_name)
                           : absl::StrCat("listener ", absl::StrJoin(s.full, ", "));
  s.overflows = Counter(host, "TcpExtListenOverflows");
  return s;
}

// A finding about the host, naming the listener when exactly one was seen full.
Builder HostFinding(const char* rule, const ListeningHost& s) {
  Builder b(rule);
  b.Host(s.name);
  if (s.full.size() == 1) b.Listener(s.full[0]);
  return b;
}

// One full listener's share of the accept_queue_overflow finding: its queue limit
// (backlog_effective + 1), the peak and what was accepted; and its remedy, naming somaxconn
// when that is what capped the backlog.
void ExplainFullQueue(const v1::Run& run, const ListeningHost& s, const std::string& l, Builder& b,
                      std::string& text, std::string& remedy) {
  const v1::Listener& listener = run.listeners().at(l);
  const std::string effective =
      b.Cite(ListenerPath(l, "backlog_effective"), listener.backlog_effective());
  const std::string peak =
      b.Cite(ListenerPath(l, "accept_queue_peak"), listener.accept_queue_peak());
  const std::string accepted = b.Cite(ListenerPath(l, "accepted"), listener.accepted());
  absl::StrAppend(&text, " ", l,
                  "'s queue holds backlog_effective + 1 = ", F(listener.backlog_effective() + 1),
                  " connections (backlog_effective ", effective, ")");
  if (listener.backlog_effective() == 0) {
    absl::StrAppend(&text,
                    ": even backlog 0 lets one wait, as the kernel calls the queue full "
                    "only beyond its limit");
  }
  absl::StrAppend(&text, "; it peaked at ", peak, " and the application accepted ", accepted);
  if (listener.accept() != v1::ACCEPT_MODE_UNSPECIFIED) {
    absl::StrAppend(&text, " (accept ", AcceptModeName(listener.accept()), ")");
  }
  if (listener.accept_queue_peak() > listener.backlog_effective() + 1) {
    // Measured above the rule: the fullness check and the insertion are not atomic.
    absl::StrAppend(&text,
                    "; a peak above backlog_effective + 1 means final ACKs handled at once on "
                    "several CPUs each passed the kernel's fullness check before any was queued");
  }
  absl::StrAppend(&text, ".");
  const SettingValue somaxconn = Setting(*s.host, kSomaxconn);
  if (somaxconn && listener.backlog() > listener.backlog_effective() &&
      listener.backlog_effective() == *somaxconn) {
    absl::StrAppend(&remedy, "Raise net.core.somaxconn on ", s.name, " (now ", F(*somaxconn),
                    ") so that ", l, "'s backlog of ", F(listener.backlog()),
                    " takes effect, or accept faster. ");
  } else {
    absl::StrAppend(&remedy, "A larger listen backlog on ", l,
                    " (with net.core.somaxconn at least as large) or accepting faster. ");
  }
}

// accept_queue_overflow: a SYN or final ACK that finds the accept queue (the listen backlog)
// full is dropped and counted in TcpExtListenOverflows.
void AcceptQueueOverflow(const v1::Run& run, const ListeningHost& s,
                         std::vector<v1::Finding>& out) {
  if (s.overflows <= 0) return;
  const double drops = Counter(*s.host, "TcpExtListenDrops");
  Builder b = HostFinding(kRuleAcceptQueueOverflow, s);
  std::string text = absl::StrCat(
      s.name, ": ", b.Cite(CounterPath(s.name, "TcpExtListenOverflows"), s.overflows),
      s.overflows == 1 ? " time" : " times", " a SYN or a final ACK found the accept queue of ",
      s.which, " full and was dropped (TcpExtListenOverflows ", F(s.overflows));
  if (drops > 0) {
    absl::StrAppend(&text, ", TcpExtListenDrops ",
                    b.Cite(CounterPath(s.name, "TcpExtListenDrops"), drops));
  }
  absl::StrAppend(&text, ").");
  std::string remedy;
  for (const std::string& l : s.full) {
    if (!run.listeners().at(l).has_backlog_effective()) continue;
    ExplainFullQueue(run, s, l, b, text, remedy);
  }
  if (remedy.empty()) {
    remedy =
        "A larger listen backlog (with net.core.somaxconn at least as large) or "
        "accepting faster.";
  }
  out.push_back(b.Done(std::move(text), std::string(absl::StripSuffix(remedy, " "))));
}

// syn_queue_full_no_cookies: with tcp_syncookies off, a SYN that finds the SYN queue (half-open
// requests up to the backlog) full is dropped (TcpExtTCPReqQFullDrop).
void SynQueueFullNoCookies(const v1::Run& run, const ListeningHost& s,
                           std::vector<v1::Finding>& out) {
  const double req_full_drop = Counter(*s.host, "TcpExtTCPReqQFullDrop");
  if (req_full_drop <= 0) return;
  const SettingValue cookies = Setting(*s.host, kSyncookies);
  Builder b = HostFinding(kRuleSynQueueFullNoCookies, s);
  std::string text = absl::StrCat(
      s.name, ": ", b.Cite(CounterPath(s.name, "TcpExtTCPReqQFullDrop"), req_full_drop),
      " SYNs were dropped because the SYN queue of ", s.which, " was full (TcpExtTCPReqQFullDrop ",
      F(req_full_drop), ")");
  if (cookies) {
    absl::StrAppend(&text, " and net.ipv4.tcp_syncookies is ",
                    b.Cite(SettingPath(s.name, kSyncookies), *cookies));
  }
  absl::StrAppend(&text,
                  ": the half-open requests had reached the listen backlog, and without "
                  "cookies the kernel keeps no SYN it has no room for");
  if (s.full.size() == 1) {
    absl::StrAppend(&text, " (backlog_effective ",
                    b.Cite(ListenerPath(s.full[0], "backlog_effective"),
                           run.listeners().at(s.full[0]).backlog_effective()),
                    ")");
  }
  absl::StrAppend(&text, ". The clients retransmit those SYNs and time out if no room comes.");
  out.push_back(b.Done(std::move(text), absl::StrCat("net.ipv4.tcp_syncookies 1 on ", s.name,
                                                     " answers such SYNs with a cookie instead; a "
                                                     "larger backlog makes room for them.")));
}

// syncookies_sent: with the SYN queue full and tcp_syncookies on, the kernel answers a SYN with
// a cookie in the SYN-ACK and keeps no request (TcpExtSyncookiesSent).
void SyncookiesSent(const ListeningHost& s, std::vector<v1::Finding>& out) {
  const double cookies_sent = Counter(*s.host, "TcpExtSyncookiesSent");
  if (cookies_sent <= 0) return;
  const SettingValue cookies = Setting(*s.host, kSyncookies);
  Builder b = HostFinding(kRuleSyncookiesSent, s);
  std::string text =
      absl::StrCat(s.name, ": ", b.Cite(CounterPath(s.name, "TcpExtSyncookiesSent"), cookies_sent),
                   " SYNs were answered with a SYN cookie (TcpExtSyncookiesSent ", F(cookies_sent));
  const double do_cookies = Counter(*s.host, "TcpExtTCPReqQFullDoCookies");
  if (do_cookies > 0) {
    absl::StrAppend(&text, ", TcpExtTCPReqQFullDoCookies ",
                    b.Cite(CounterPath(s.name, "TcpExtTCPReqQFullDoCookies"), do_cookies));
  }
  absl::StrAppend(&text, ") because the SYN queue of ", s.which, " was full");
  if (cookies) {
    absl::StrAppend(&text, " and net.ipv4.tcp_syncookies is ",
                    b.Cite(SettingPath(s.name, kSyncookies), *cookies));
  }
  absl::StrAppend(&text, ": the server kept no state for those handshakes.");
  const double recv = Counter(*s.host, "TcpExtSyncookiesRecv");
  const double failed = Counter(*s.host, "TcpExtSyncookiesFailed");
  if (recv > 0 || failed > 0) {
    absl::StrAppend(&text, " Cookies came back in ",
                    b.Cite(CounterPath(s.name, "TcpExtSyncookiesRecv"), recv),
                    " final ACKs (TcpExtSyncookiesRecv), ",
                    b.Cite(CounterPath(s.name, "TcpExtSyncookiesFailed"), failed),
                    " failed the check (TcpExtSyncookiesFailed).");
  }
  out.push_back(b.Done(std::move(text), absl::StrCat("A larger backlog keeps state for these "
                                                     "handshakes; net.ipv4.tcp_syncookies 0 on ",
                                                     s.name, " would drop such SYNs instead.")));
}

// What the server answered the clients of an overflowing host, for the final-ACK rules.
struct ServerReplies {
  int32_t abort = 0;  // net.ipv4.tcp_abort_on_overflow
  FloodsSummary floods;
  double synack_retrans = 0;  // TcpExtTCPSynRetrans; 0 when the host also floods
  bool captured = false;      // the capture saw the server's packets
  double captured_synack_retrans = 0;
  double captured_rst = 0;
};

ServerReplies ReadServerReplies(const v1::Run& run, const ListeningHost& s, int32_t abort) {
  ServerReplies r;
  r.abort = abort;
  r.floods = Summarize(run, s.full.empty() ? s.listeners : s.full);
  r.synack_retrans = RunsFloods(run, s.name) ? 0  // its TCPSynRetrans would mix in its own SYNs
                                             : Counter(*s.host, "TcpExtTCPSynRetrans");
  const v1::Host& host = *s.host;
  r.captured = host.packets().error().empty() && host.packets().has_from_server() &&
               host.packets().from_server().total() > 0;
  r.captured_synack_retrans = r.captured ? host.packets().from_server().synack_retransmit() : 0;
  r.captured_rst = r.captured ? host.packets().from_server().rst() : 0;
  return r;
}

// final_ack_overflow_rst: with tcp_abort_on_overflow 1, a final ACK that finds the accept queue
// full is answered with an RST, so the client is reset one round trip after its handshake.
void FinalAckOverflowRst(const v1::Run& run, const ListeningHost& s, const ServerReplies& r,
                         std::vector<v1::Finding>& out) {
  Builder b = HostFinding(kRuleFinalAckRst, s);
  b.Cite(SettingPath(s.name, kAbortOnOverflow), r.abort);
  std::vector<std::string> parts;
  for (const std::string& f : r.floods.names) {
    const v1::Flood& flood = run.floods().at(f);
    if (flood.reset() == 0) continue;
    std::string part =
        absl::StrCat(f, ": ", b.Cite(FloodPath(f, "reset"), flood.reset()), " reset");
    if (!flood.reset_after_ms().empty()) {
      absl::StrAppend(&part, " at ~",
                      b.Cite(FloodPath(f, "reset_after_ms.median"), Median(flood.reset_after_ms())),
                      " ms from the SYN");
    }
    if (flood.established() > 0) {
      absl::StrAppend(
          &part, ", one round trip after a handshake of ~",
          b.Cite(FloodPath(f, "connect_latency_ms.p50"), flood.connect_latency_ms().p50()),
          " ms (connect p50)");
    }
    parts.push_back(std::move(part));
  }
  std::string text =
      absl::StrCat(absl::StrJoin(parts, "; "),
                   ". Their final ACK found the accept queue full, and with "
                   "net.ipv4.tcp_abort_on_overflow 1 ",
                   s.name, " answers it with an RST (TcpExtListenOverflows ", F(s.overflows));
  if (r.captured) {
    absl::StrAppend(
        &text, "; capture: ",
        b.Cite(absl::StrCat("hosts.", s.name, ".packets.from_server.rst"), r.captured_rst),
        " RST from the server");
  }
  absl::StrAppend(&text, ").");
  out.push_back(
      b.Done(std::move(text),
             absl::StrCat("net.ipv4.tcp_abort_on_overflow 0 on ", s.name,
                          " keeps such clients waiting (SYN-ACK retransmits) until the queue has "
                          "room; a larger backlog or accepting faster avoids the overflow.")));
}

// final_ack_overflow_synack_retries: with tcp_abort_on_overflow 0, a final ACK that finds the
// accept queue full is dropped and the request stays in SYN-RECV, its SYN-ACK retransmitted up
// to tcp_synack_retries times.
void FinalAckOverflowSynackRetries(const v1::Run& run, const ListeningHost& s,
                                   const ServerReplies& r, std::vector<v1::Finding>& out) {
  Builder b = HostFinding(kRuleFinalAckSynackRetries, s);
  b.Cite(SettingPath(s.name, kAbortOnOverflow), r.abort);
  std::vector<std::string> figures;
  if (r.synack_retrans > 0) {
    figures.push_back(
        absl::StrCat("TcpExtTCPSynRetrans ",
                     b.Cite(CounterPath(s.name, "TcpExtTCPSynRetrans"), r.synack_retrans)));
  }
  if (r.captured) {
    figures.push_back(absl::StrCat(
        "capture: ",
        b.Cite(absl::StrCat("hosts.", s.name, ".packets.from_server.synack_retransmit"),
               r.captured_synack_retrans),
        " SYN-ACK retransmits"));
  }
  std::string text = absl::StrCat(
      s.name, " retransmitted SYN-ACKs (", absl::StrJoin(figures, ", "),
      "): with net.ipv4.tcp_abort_on_overflow 0 a final ACK that finds the accept queue full "
      "is dropped, and the server acts as if it was lost, so the client believes it is "
      "connected while the server holds the request in SYN-RECV");
  if (r.floods.syn_recv > 0) {
    absl::StrAppend(&text, " (fates.syn_recv ", F(r.floods.syn_recv), ")");
  }
  const SettingValue retries = Setting(*s.host, kSynackRetries);
  if (retries) {
    absl::StrAppend(&text, "; after net.ipv4.tcp_synack_retries (",
                    b.Cite(SettingPath(s.name, kSynackRetries), *retries),
                    ") retries the request is dropped");
  }
  std::vector<std::string> ends;
  for (const std::string& f : r.floods.names) {
    const v1::Flood& flood = run.floods().at(f);
    if (flood.reset() > 0 && !flood.reset_after_ms().empty()) {
      ends.push_back(absl::StrCat(
          f, " had ", b.Cite(FloodPath(f, "reset"), flood.reset()), " reset at ~",
          b.Cite(FloodPath(f, "reset_after_ms.median"), Median(flood.reset_after_ms())), " ms"));
    }
  }
  if (!ends.empty()) {
    absl::StrAppend(&text, " and the client's next segment is answered with an RST (",
                    absl::StrJoin(ends, "; "), ")");
  }
  absl::StrAppend(&text, ".");
  out.push_back(
      b.Done(std::move(text),
             absl::StrCat("A larger backlog or accepting faster avoids the overflow; "
                          "net.ipv4.tcp_abort_on_overflow 1 on ",
                          s.name,
                          " would reset such clients at once, and net.ipv4.tcp_synack_retries "
                          "bounds how long they wait.")));
}

// abort_on_overflow_idle: tcp_abort_on_overflow acts only on final ACKs; an overflow with
// neither RSTs nor SYN-ACK retransmits dropped SYNs only, so the setting played no part.
void AbortOnOverflowIdle(const ListeningHost& s, const ServerReplies& r,
                         std::vector<v1::Finding>& out) {
  Builder b = HostFinding(kRuleAbortOnOverflowIdle, s);
  const std::string value = b.Cite(SettingPath(s.name, kAbortOnOverflow), r.abort);
  b.Cite(CounterPath(s.name, "TcpExtTCPSynRetrans"), r.synack_retrans);
  std::string text = absl::StrCat(
      s.name, ": net.ipv4.tcp_abort_on_overflow ", value,
      " played no part: no client was reset and no SYN-ACK was retransmitted "
      "(TcpExtTCPSynRetrans 0), so the overflow dropped SYNs before any handshake and never "
      "a final ACK (a SYN-ACK crossing a queue that fills meanwhile needs link delay).");
  out.push_back(b.Done(std::move(text),
                       "Only room in the accept queue (a larger backlog, accepting faster) "
                       "changes this outcome; tcp_abort_on_overflow does not."));
}

// The final-ACK rules need the overflow; with it, abort_on_overflow decides what the client
// sees: an RST, SYN-ACK retransmits, or (said only when the scenario set it: the default 0
// needs no excuse) nothing at all.
void FinalAckOverflow(const v1::Run& run, const ListeningHost& s, std::vector<v1::Finding>& out) {
  const SettingValue abort = Setting(*s.host, kAbortOnOverflow);
  if (s.overflows <= 0 || !abort) return;
  const ServerReplies r = ReadServerReplies(run, s, *abort);
  const auto& changed = s.host->changed_settings();
  if (r.abort == 1 && r.floods.reset > 0) {
    FinalAckOverflowRst(run, s, r, out);
  } else if (r.abort == 0 && (r.synack_retrans > 0 || r.captured_synack_retrans > 0)) {
    FinalAckOverflowSynackRetries(run, s, r, out);
  } else if (r.floods.reset == 0 && r.synack_retrans == 0 && r.captured_synack_retrans == 0 &&
             !RunsFloods(run, s.name) &&
             (r.abort == 1 || std::count(changed.begin(), changed.end(), kAbortOnOverflow) > 0)) {
    AbortOnOverflowIdle(s, r, out);
  }
}

// Per listening host, in host order: the rules run in this order because it is the reading
// order of the diagnosis (the queue that overflowed first, then what the client saw of it).
void ServerDrops(const v1::Run& run, std::vector<v1::Finding>& out) {
  for (const std::string& host_name : SortedKeys(run.hosts())) {
    const v1::Host* host = ObservedHost(run, host_name);
    if (host == nullptr || ListenersOn(run, host_name).empty()) continue;
    const ListeningHost s = ReadListeningHost(run, host_name, *host);
    AcceptQueueOverflow(run, s, out);
    SynQueueFullNoCookies(run, s, out);
    SyncookiesSent(s, out);
    FinalAckOverflow(run, s, out);
  }
}

// ---------------------------------------------------------------------------------------------
// Flood rules: what the clients saw.

// Connects grouped by how many whole seconds they took beyond the fastest one.
struct Band {
  int seconds = 0;
  uint64_t count = 0;
  double sum_us = 0;
};

std::vector<Band> RetransmitBands(const v1::Flood& flood, double* fastest_us) {
  std::map<uint32_t, uint64_t> buckets;
  for (const auto& [index, count] : flood.connect_latency_histogram().buckets()) {
    if (count > 0) buckets[index] = count;
  }
  if (buckets.empty()) return {};
  const common::Histogram h = common::Histogram::FromBuckets(
      flood.connect_latency_histogram().sub_bucket_bits(), buckets, 0);
  *fastest_us = static_cast<double>(h.BucketLower(buckets.begin()->first));
  std::map<int, Band> bands;
  for (const auto& [index, count] : buckets) {
    const double mid =
        (static_cast<double>(h.BucketLower(index)) + static_cast<double>(h.BucketUpper(index))) / 2;
    const double late = mid - *fastest_us;
    const int seconds = static_cast<int>(std::lround(late / kInitialRtoUs));
    if (seconds < 1 || std::abs(late - seconds * kInitialRtoUs) > kBandHalfWidthUs) continue;
    Band& band = bands[seconds];
    band.seconds = seconds;
    band.count += count;
    band.sum_us += mid * static_cast<double>(count);
  }
  std::vector<Band> out;
  for (const auto& [s, band] : bands) out.push_back(band);
  return out;
}

// Why the SYNs of a flood into `server` were dropped, as far as its counters tell.
struct DropCause {
  std::string text;    // "their SYNs found ... full (TcpExtListenOverflows 11)"; empty: unknown
  std::string remedy;  // what would make room
};

DropCause CauseOfSynDrops(const v1::Run& run, const v1::Flood& flood, Builder& b) {
  const std::string server = ServerHostOf(run, flood);
  const v1::Host* host = server.empty() ? nullptr : ObservedHost(run, server);
  if (host == nullptr || !ServerObserved(flood)) {
    return {"the server side was not observed, so where the SYNs were dropped cannot be told", ""};
  }
  const std::string listener = ListenerOf(run, flood);
  const std::string where = listener.empty() ? absl::StrCat("the listener on ", server)
                                             : absl::StrCat("listener ", listener);
  const double overflows = Counter(*host, "TcpExtListenOverflows");
  const double req_full = Counter(*host, "TcpExtTCPReqQFullDrop");
  if (req_full > 0) {
    return {absl::StrCat("SYNs were dropped because the SYN queue of ", where, " was full (",
                         server, " TcpExtTCPReqQFullDrop ",
                         b.Cite(CounterPath(server, "TcpExtTCPReqQFullDrop"), req_full), ")"),
            absl::StrCat("net.ipv4.tcp_syncookies 1 on ", server, " or a larger backlog on ",
                         listener.empty() ? "the listener" : listener, ".")};
  }
  if (overflows > 0) {
    return {
        absl::StrCat("SYNs found the accept queue of ", where, " full and were dropped (", server,
                     " TcpExtListenOverflows ",
                     b.Cite(CounterPath(server, "TcpExtListenOverflows"), overflows), ")"),
        absl::StrCat("Room in the accept queue of ", listener.empty() ? "the listener" : listener,
                     ": a larger backlog (and net.core.somaxconn) or accepting faster.")};
  }
  const double drops = Counter(*host, "TcpExtListenDrops");
  b.Cite(CounterPath(server, "TcpExtListenDrops"), drops);
  return {absl::StrCat(server, " counted no listen drop (TcpExtListenDrops ", F(drops),
                       "), so the handshake packets were lost before its listener or on the way "
                       "back"),
          "Look at the path (shaping loss, filters) rather than the listener's queues."};
}

// server_not_observed: a flood into no listener of this run has no server counters or sockets
// to join with, so what the server's kernel did with its connections cannot be told.
void ServerNotObserved(const v1::Run& run, const std::string& name, const v1::Flood& flood,
                       std::vector<v1::Finding>& out) {
  if (ServerObserved(flood) || flood.attempted() == 0 || !ListenerOf(run, flood).empty()) return;
  Builder b(kRuleServerNotObserved);
  b.Flood(name).Host(flood.host());
  std::string text =
      flood.target().empty()
          ? absl::StrCat(name,
                         " is not joined with a listener of this run, so the server "
                         "side was not observed: ")
          : absl::StrCat(name, ": the target ", flood.target(),
                         " is not a listener this run started, so the server side was not "
                         "observed: ");
  if (flood.established() > 0) {
    absl::StrAppend(&text, "whether its ",
                    b.Cite(FloodPath(name, "established"), flood.established()),
                    " established connections were accepted, queued or unknown to the "
                    "server, and ");
  }
  absl::StrAppend(&text, "what the server dropped cannot be told.");
  out.push_back(
      b.Done(std::move(text), "Target a listener of the scenario to observe the server side."));
}

// unknown_to_server: a client whose SYN-ACK carried a cookie (or whose final ACK was dropped)
// is ESTABLISHED while the server holds no socket, so its data is retransmitted unanswered.
void UnknownToServer(const v1::Run& run, const std::string& name, const v1::Flood& flood,
                     std::vector<v1::Finding>& out) {
  if (!ServerObserved(flood) || flood.fates().unknown_to_server() == 0) return;
  const std::string server = ServerHostOf(run, flood);
  Builder b(kRuleUnknownToServer);
  b.Flood(name).Host(flood.host());
  std::string text = absl::StrCat(
      name, ": ",
      b.Cite(FloodPath(name, "fates.unknown_to_server"), flood.fates().unknown_to_server()),
      " clients completed the handshake and believe they are connected, but ", server,
      " holds no socket for them (fates.unknown_to_server)");
  const v1::Host* host = server.empty() ? nullptr : ObservedHost(run, server);
  const double sent = host != nullptr ? Counter(*host, "TcpExtSyncookiesSent") : 0;
  const double overflows = host != nullptr ? Counter(*host, "TcpExtListenOverflows") : 0;
  if (sent > 0) {
    absl::StrAppend(&text, ": their SYN-ACK carried a cookie (",
                    b.Cite(CounterPath(server, "TcpExtSyncookiesSent"), sent),
                    " sent) and kept no state, and the final ACK that would have made the "
                    "connection");
    if (overflows > 0) {
      absl::StrAppend(&text, " found the accept queue full (TcpExtListenOverflows ",
                      b.Cite(CounterPath(server, "TcpExtListenOverflows"), overflows), ")");
    } else {
      absl::StrAppend(&text, " did not create one");
    }
  }
  absl::StrAppend(&text, ". What they send goes unanswered and is retransmitted");
  const v1::Host* client = ObservedHost(run, flood.host());
  const double retrans = client != nullptr ? Counter(*client, "TcpRetransSegs") : 0;
  if (retrans > 0) {
    absl::StrAppend(&text, " (", flood.host(), " TcpRetransSegs ",
                    b.Cite(CounterPath(flood.host(), "TcpRetransSegs"), retrans), ")");
  }
  absl::StrAppend(&text, ".");
  out.push_back(b.Done(std::move(text),
                       "Room in the accept queue (a larger backlog, accepting faster); with "
                       "net.ipv4.tcp_syncookies 0 these clients would time out instead of "
                       "appearing connected."));
}

// What ended the timed-out connects, told by their median wait: the scenario's
// connect_timeout, the kernel giving up after tcp_syn_retries SYN timeouts (1, 2, 4 ... s), or
// a deadline before the first SYN retransmit was due. Appends to the text and the remedy.
void ExplainTimeoutWait(const v1::Run& run, const std::string& name, const v1::Flood& flood,
                        Builder& b, std::string& text, std::string& remedy) {
  const double median = Median(flood.timed_out_after_ms());
  absl::StrAppend(&text, " after ~", b.Cite(FloodPath(name, "timed_out_after_ms.median"), median),
                  " ms");
  const v1::Host* client = ObservedHost(run, flood.host());
  const SettingValue syn_retries =
      client != nullptr ? Setting(*client, kSynRetries) : SettingValue{};
  // The kernel gives up on a connect after SYN timeouts of 1, 2, 4 ... s: (2^(n+1) - 1) s
  // for tcp_syn_retries n (plus any link delay).
  const double kernel_gives_up_ms =
      syn_retries && *syn_retries < 20 ? ((2 << *syn_retries) - 1) * 1000.0 : 0;
  if (flood.connect_timeout_ms() > 0 && median >= 0.95 * flood.connect_timeout_ms() &&
      median <= 1.2 * flood.connect_timeout_ms()) {
    absl::StrAppend(&text, ", the scenario's connect_timeout (",
                    b.Cite(FloodPath(name, "connect_timeout_ms"), flood.connect_timeout_ms()),
                    " ms)");
    if (flood.connect_timeout_ms() <= kInitialRtoUs / 1000) {
      remedy = "A connect_timeout above 1 s lets a retransmitted SYN complete. ";
    }
  } else if (kernel_gives_up_ms > 0 && median >= 0.9 * kernel_gives_up_ms &&
             median <= 1.3 * kernel_gives_up_ms) {
    absl::StrAppend(&text, ", when the kernel gave up after net.ipv4.tcp_syn_retries (",
                    b.Cite(SettingPath(flood.host(), kSynRetries), *syn_retries),
                    ") SYN retransmits");
    remedy = absl::StrCat("net.ipv4.tcp_syn_retries on ", flood.host(),
                          " sets how long clients keep trying. ");
  } else if (median < kInitialRtoUs / 1000) {
    absl::StrAppend(&text, ", before the first SYN retransmit was due (1 s)");
    remedy = "A connect_timeout above 1 s lets a retransmitted SYN complete. ";
  }
}

// timed_out: a connect whose SYNs all went unanswered (dropped at a full queue, or lost) times
// out, at the scenario's deadline or when the kernel stops retransmitting the SYN.
void TimedOut(const v1::Run& run, const std::string& name, const v1::Flood& flood,
              std::vector<v1::Finding>& out) {
  if (flood.timed_out() == 0) return;
  Builder b(kRuleTimedOut);
  b.Flood(name).Host(flood.host());
  std::string text =
      absl::StrCat(name, ": ", b.Cite(FloodPath(name, "timed_out"), flood.timed_out()), " of ",
                   F(flood.attempted()), " connects timed out");
  std::string remedy;
  if (!flood.timed_out_after_ms().empty()) ExplainTimeoutWait(run, name, flood, b, text, remedy);
  const DropCause cause = CauseOfSynDrops(run, flood, b);
  absl::StrAppend(&text, ": ", cause.text, ".");
  absl::StrAppend(&remedy, cause.remedy);
  out.push_back(b.Done(std::move(text), std::string(absl::StripSuffix(remedy, " "))));
}

// Whether a listener of the run is bound to the flood's target port (on its address or on
// every address).
bool AnyListenerOnTarget(const v1::Run& run, const v1::Flood& flood) {
  const std::string& ip = flood.target_ip();
  bool listened = false;
  for (const auto& [l, listener] : run.listeners()) {
    if (listener.port() == flood.target_port() &&
        (listener.ip() == ip || listener.ip() == "0.0.0.0" || listener.ip() == "::")) {
      listened = true;
    }
  }
  return listened;
}

// refused: a SYN to a port nothing listens on is answered with an RST, which connect() reports
// as ECONNREFUSED.
void Refused(const v1::Run& run, const std::string& name, const v1::Flood& flood,
             std::vector<v1::Finding>& out) {
  if (flood.refused() == 0) return;
  const std::string server = ServerHostOf(run, flood);
  Builder b(kRuleRefused);
  b.Flood(name).Host(flood.host());
  const std::string port = flood.target_port() == 0 ? "" : absl::StrCat(flood.target_port());
  std::string text =
      absl::StrCat(name, ": ", b.Cite(FloodPath(name, "refused"), flood.refused()), " of ",
                   F(flood.attempted()), " connects were refused (ECONNREFUSED): the SYN to ",
                   (flood.target().empty() ? std::string("the target") : flood.target()),
                   " was answered with an RST, which a host sends when nothing listens on "
                   "the port");
  if (!port.empty() && !AnyListenerOnTarget(run, flood)) {
    absl::StrAppend(&text, "; no listener of this run is on port ", port);
  }
  const v1::Host* host = server.empty() ? nullptr : ObservedHost(run, server);
  if (host != nullptr && Counter(*host, "TcpOutRsts") > 0) {
    absl::StrAppend(&text, " (", server, " TcpOutRsts ",
                    b.Cite(CounterPath(server, "TcpOutRsts"), Counter(*host, "TcpOutRsts")), ")");
  }
  absl::StrAppend(&text, ".");
  out.push_back(b.Done(std::move(text),
                       port.empty() ? std::string("Start a listener on the target port, or aim "
                                                  "the flood at a listening port.")
                                    : absl::StrCat("Start a listener on port ", port,
                                                   " or aim the flood at a listening port.")));
}

// ports_exhausted: every connection to one address and port needs its own local port from
// ip_local_port_range; when none is free, connect() fails with EADDRNOTAVAIL.
void PortsExhausted(const std::string& name, const v1::Flood& flood, uint32_t count,
                    std::vector<v1::Finding>& out) {
  Builder b(kRulePortsExhausted);
  b.Flood(name).Host(flood.host());
  std::string text = absl::StrCat(
      name, ": ", b.Cite(FloodPath(name, "errors.EADDRNOTAVAIL"), count),
      " connects failed with EADDRNOTAVAIL: ", flood.host(),
      " had no free local port for another connection to ",
      flood.target().empty() ? std::string("the target") : flood.target(), " (",
      b.Cite(FloodPath(name, "established"), flood.established()),
      " were established). Every open connection to one address and port takes its own "
      "local port from net.ipv4.ip_local_port_range.");
  out.push_back(
      b.Done(std::move(text), absl::StrCat("Widen net.ipv4.ip_local_port_range on ", flood.host(),
                                           ", hold fewer connections at once, or spread them "
                                           "over more target ports or addresses.")));
}

// fd_limit: socket() fails with EMFILE at the process's RLIMIT_NOFILE and with ENFILE when the
// system's file table (fs.file-max) is full; the agent's accepted sockets count against both.
void FdLimit(const v1::Run& run, const std::string& name, const v1::Flood& flood,
             const std::string& error, uint32_t count, std::vector<v1::Finding>& out) {
  Builder b(kRuleFdLimit);
  b.Flood(name).Host(flood.host());
  const bool per_process = error == "EMFILE";
  std::string text =
      absl::StrCat(name, ": ", b.Cite(FloodPath(name, absl::StrCat("errors.", error)), count),
                   " sockets could not be opened (", error, "): the agent on ", flood.host(),
                   per_process ? " reached its open-file limit (RLIMIT_NOFILE)"
                               : " found the system's file table full (fs.file-max)",
                   "; ", b.Cite(FloodPath(name, "established"), flood.established()),
                   " connections were established");
  std::vector<std::string> holders;
  for (const std::string& l : ListenersOn(run, flood.host())) {
    const v1::Listener& listener = run.listeners().at(l);
    if (listener.accepted() > 0) {
      holders.push_back(absl::StrCat(
          l, " ", b.Cite(ListenerPath(l, "accepted"), listener.accepted()), " accepted"));
    }
  }
  if (!holders.empty()) {
    absl::StrAppend(&text, ", and the same agent's listeners held sockets they accepted (",
                    absl::StrJoin(holders, ", "), ")");
  }
  absl::StrAppend(&text, ".");
  out.push_back(
      b.Done(std::move(text),
             per_process ? absl::StrCat("Raise the open-file limit of the agent on ", flood.host(),
                                        " (ulimit -n, LimitNOFILE=), or hold fewer sockets at "
                                        "once.")
                         : "Raise fs.file-max, or hold fewer sockets at once."));
}

// connect_errors: any other errno from socket() or connect(), reported as counted; synq names
// no kernel cause it did not observe.
void ConnectError(const std::string& name, const v1::Flood& flood, const std::string& error,
                  uint32_t count, std::vector<v1::Finding>& out) {
  Builder b(kRuleConnectErrors);
  b.Flood(name).Host(flood.host());
  out.push_back(b.Done(
      absl::StrCat(name, ": ", b.Cite(FloodPath(name, absl::StrCat("errors.", error)), count),
                   " connects failed with ", error, "."),
      ""));
}

// One finding per errno the flood's connects failed with, in errno-name order.
void ConnectErrors(const v1::Run& run, const std::string& name, const v1::Flood& flood,
                   std::vector<v1::Finding>& out) {
  // Protobuf maps have no order: walk the names sorted so the diagnosis is the same every time.
  for (const std::string& error : SortedKeys(flood.errors())) {
    const uint32_t count = flood.errors().at(error);
    if (count == 0) continue;
    if (error == "EADDRNOTAVAIL") {
      PortsExhausted(name, flood, count, out);
    } else if (error == "EMFILE" || error == "ENFILE") {
      FdLimit(run, name, flood, error, count, out);
    } else {
      ConnectError(name, flood, error, count, out);
    }
  }
}

// syn_retransmit_bands: a dropped SYN is retransmitted after the 1 s initial RTO (then 2, 4 ...
// s), so connects that completed whole seconds later than the fastest had that many drops.
void SynRetransmitBands(const v1::Run& run, const std::string& name, const v1::Flood& flood,
                        std::vector<v1::Finding>& out) {
  double fastest_us = 0;
  const std::vector<Band> bands = RetransmitBands(flood, &fastest_us);
  if (bands.empty()) return;
  Builder b(kRuleSynRetransmitBands);
  b.Flood(name).Host(flood.host());
  uint64_t late = 0;
  std::vector<std::string> parts;
  for (const Band& band : bands) {
    late += band.count;
    const double at_s = band.sum_us / static_cast<double>(band.count) / 1e6;
    parts.push_back(absl::StrCat(
        b.Cite(FloodPath(name, absl::StrCat("connect_latency_band_", band.seconds, "s")),
               static_cast<double>(band.count)),
        " at ~", absl::StrFormat("%.1f", at_s), " s"));
  }
  std::string text = absl::StrCat(
      name, ": ", F(static_cast<double>(late)), " of ",
      b.Cite(FloodPath(name, "established"), flood.established()),
      " connects completed whole seconds late: ", absl::StrJoin(parts, ", "),
      " (connect latency histogram; fastest ",
      b.Cite(FloodPath(name, "connect_latency_fastest_ms"), fastest_us / 1000),
      " ms). Such a connect had its SYN dropped (or its SYN-ACK lost) and retransmitted "
      "after the 1 s initial RTO, once per band");
  const v1::Host* client = ObservedHost(run, flood.host());
  const double syn_retrans = client != nullptr && ListenersOn(run, flood.host()).empty()
                                 ? Counter(*client, "TcpExtTCPSynRetrans")
                                 : 0;
  if (syn_retrans > 0) {
    absl::StrAppend(&text, " (", flood.host(), " TcpExtTCPSynRetrans ",
                    b.Cite(CounterPath(flood.host(), "TcpExtTCPSynRetrans"), syn_retrans), ")");
  }
  const DropCause cause = CauseOfSynDrops(run, flood, b);
  absl::StrAppend(&text, "; here ", cause.text, ".");
  out.push_back(b.Done(std::move(text), cause.remedy));
}

// all_established: every connect completed its handshake; where the server was observed, says
// how many it accepted and how many still waited in its queues.
void AllEstablished(const std::string& name, const v1::Flood& flood,
                    std::vector<v1::Finding>& out) {
  uint32_t errors = 0;
  for (const auto& [error, count] : flood.errors()) errors += count;
  if (flood.attempted() == 0 || flood.established() != flood.attempted() || flood.reset() != 0 ||
      flood.refused() != 0 || flood.timed_out() != 0 || errors != 0) {
    return;
  }
  Builder b(kRuleAllEstablished);
  b.Flood(name).Host(flood.host());
  std::string text =
      absl::StrCat(name, ": all ", b.Cite(FloodPath(name, "attempted"), flood.attempted()),
                   " attempts were established");
  const v1::Fates& fates = flood.fates();
  if (flood.closed() > 0) {
    // Churn: the flood closed these itself after their lifetime; they have no fate to join.
    absl::StrAppend(&text, "; the flood closed ", b.Cite(FloodPath(name, "closed"), flood.closed()),
                    " itself after their lifetime");
  }
  if (ServerObserved(flood) && flood.closed() >= flood.established()) {
    // Nothing left open to join.
  } else if (ServerObserved(flood)) {
    absl::StrAppend(&text, "; the server accepted ",
                    b.Cite(FloodPath(name, "fates.accepted"), fates.accepted()), " and ",
                    b.Cite(FloodPath(name, "fates.queued"), fates.queued()),
                    " were waiting in the accept queue");
    if (fates.syn_recv() > 0) {
      absl::StrAppend(&text, ", ", b.Cite(FloodPath(name, "fates.syn_recv"), fates.syn_recv()),
                      " still in SYN-RECV");
    }
    if (fates.unknown_to_server() > 0) {
      absl::StrAppend(&text, ", ", F(fates.unknown_to_server()), " unknown to the server");
    }
  } else {
    absl::StrAppend(&text, " (the server side was not observed)");
  }
  absl::StrAppend(&text, ".");
  out.push_back(b.Done(std::move(text), ""));
}

// Per flood, in flood order; the rule order below is the reading order of the diagnosis.
void FloodOutcomes(const v1::Run& run, std::vector<v1::Finding>& out) {
  for (const std::string& name : SortedKeys(run.floods())) {
    const v1::Flood& flood = run.floods().at(name);
    if (!flood.group().empty() && flood.members_size() == 0) continue;  // told by its group's row
    GeneratorBehind(name, flood, out);
    ServerNotObserved(run, name, flood, out);
    UnknownToServer(run, name, flood, out);
    TimedOut(run, name, flood, out);
    Refused(run, name, flood, out);
    ConnectErrors(run, name, flood, out);
    SynRetransmitBands(run, name, flood, out);
    AllEstablished(name, flood, out);
  }
}

void FailedHosts(const v1::Run& run, std::vector<v1::Finding>& out) {
  for (const std::string& name : SortedKeys(run.hosts())) {
    const v1::Host& host = run.hosts().at(name);
    if (host.error().empty()) continue;
    Builder b(kRuleHostFailed);
    b.Host(name);
    out.push_back(b.Done(absl::StrCat(name, " failed during the run (", host.error(),
                                      "): its counters and sockets are missing, so what it "
                                      "dropped cannot be told."),
                         ""));
  }
}

// Word-wraps `text` to `width` columns; it starts after `indent` (already written) and every
// further line is indented by it.
std::string Wrap(const std::string& text, size_t width, const std::string& indent) {
  std::string out;
  size_t column = indent.size();
  bool line_start = true;
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    if (!line_start && column + 1 + word.size() > width) {
      absl::StrAppend(&out, "\n", indent);
      column = indent.size();
      line_start = true;
    }
    if (!line_start) {
      out += ' ';
      ++column;
    }
    absl::StrAppend(&out, word);
    column += word.size();
    line_start = false;
  }
  return out;
}

}  // namespace

std::string FormatFigure(double value) {
  if (std::isnan(value) || std::isinf(value)) return absl::StrCat(value);
  const double rounded = std::round(value);
  if (std::abs(value - rounded) < 0.05) return absl::StrCat(static_cast<int64_t>(rounded));
  return absl::StrFormat("%.1f", value);
}

std::vector<v1::Finding> Diagnose(const v1::Run& run) {
  std::vector<v1::Finding> out;
  FailedHosts(run, out);
  ListenerLimits(run, out);
  PacedAccept(run, out);
  ServerDrops(run, out);
  FloodOutcomes(run, out);
  return out;
}

std::string RenderDiagnosis(const v1::Run& run) {
  std::vector<v1::Finding> findings(run.diagnosis().begin(), run.diagnosis().end());
  if (findings.empty()) findings = Diagnose(run);
  std::string out = absl::StrCat("Diagnosis, run ", run.index());
  if (!run.params().empty()) {
    std::vector<std::string> params;
    for (const std::string& key : SortedKeys(run.params())) {
      params.push_back(absl::StrCat(key, "=", result::FormatParamValue(run.params().at(key))));
    }
    absl::StrAppend(&out, " (", absl::StrJoin(params, ", "), ")");
  }
  absl::StrAppend(&out, ":\n");
  if (findings.empty()) {
    absl::StrAppend(&out, "  nothing to explain: no flood, listener or drop was observed.\n");
    return out;
  }
  constexpr size_t kWidth = 100;
  for (size_t i = 0; i < findings.size(); ++i) {
    const std::string number = absl::StrCat("  ", i + 1, ". ");
    const std::string indent(number.size(), ' ');
    absl::StrAppend(&out, number, Wrap(findings[i].text(), kWidth, indent), "\n");
    if (!findings[i].remedy().empty()) {
      absl::StrAppend(&out, indent,
                      Wrap(absl::StrCat("To change: ", findings[i].remedy()), kWidth, indent),
                      "\n");
    }
  }
  return out;
}

}  // namespace synq::controller::verdict
