#include "controller/verdict/baseline.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <optional>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "controller/result/counter_catalog.h"
#include "controller/result/format.h"
#include "google/protobuf/util/message_differencer.h"

namespace synq::controller::verdict {
namespace {

namespace v1 = ::synq::result::v1;
// Field path -> value; nullopt where the result says it was not measured.
using Fields = std::vector<std::pair<std::string, std::optional<double>>>;

constexpr const char* kFloodCounts[] = {"attempted", "established", "reset", "refused",
                                        "timed_out"};
constexpr const char* kFateCounts[] = {"accepted",          "queued", "syn_recv",
                                       "unknown_to_server", "reset",  "refused",
                                       "timed_out",         "error",  "established_unjoined"};
constexpr const char* kLatencies[] = {"p50", "p90", "p99", "max"};
constexpr const char* kListenerFields[] = {"backlog_effective", "accepted", "accept_queue_peak"};

std::vector<std::string> Segments(const std::string& path) { return absl::StrSplit(path, '.'); }

// Every compared field with object names (and errno names) as `*`: what a pattern may match.
const std::vector<std::string>& FieldTemplates() {
  static const std::vector<std::string>* templates = [] {
    auto* t = new std::vector<std::string>;
    for (const char* f : kFloodCounts) t->push_back(absl::StrCat("floods.*.", f));
    t->push_back("floods.*.errors.*");
    for (const char* f : kFateCounts) t->push_back(absl::StrCat("floods.*.fates.", f));
    for (const char* f : kLatencies) t->push_back(absl::StrCat("floods.*.connect_latency_ms.", f));
    for (const char* f : kListenerFields) t->push_back(absl::StrCat("listeners.*.", f));
    for (const auto& [c, compared] : result::kHandshakeCounters) {
      if (compared) t->push_back(absl::StrCat("hosts.*.counters.", c));
    }
    return t;
  }();
  return *templates;
}

bool PatternMatches(const std::vector<std::string>& pattern,
                    const std::vector<std::string>& field) {
  if (pattern.size() != field.size()) return false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != "*" && pattern[i] != field[i]) return false;
  }
  return true;
}

// Could `pattern` match some instance of `templ` (both may hold `*`)?
bool Compatible(const std::vector<std::string>& pattern, const std::vector<std::string>& templ) {
  if (pattern.size() != templ.size()) return false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != "*" && templ[i] != "*" && pattern[i] != templ[i]) return false;
  }
  return true;
}

absl::StatusOr<double> ParsePercentText(absl::string_view text) {
  absl::string_view t = absl::StripAsciiWhitespace(text);
  if (absl::EndsWith(t, "%")) t.remove_suffix(1);
  double v = 0;
  if (t.empty() || !absl::SimpleAtod(t, &v) || !std::isfinite(v) || v < 0 || v > 1e6) {
    return absl::InvalidArgumentError("expected a percentage from 0 to 1000000 like 10%");
  }
  return v;
}

}  // namespace

namespace {

std::string FormatValue(double v) { return FormatNumber(v); }

bool ValuesEqual(const google::protobuf::Value& a, const google::protobuf::Value& b) {
  if (a.kind_case() != b.kind_case()) return false;
  switch (a.kind_case()) {
    case google::protobuf::Value::kNumberValue:
      return a.number_value() == b.number_value();
    case google::protobuf::Value::kStringValue:
      return a.string_value() == b.string_value();
    case google::protobuf::Value::kBoolValue:
      return a.bool_value() == b.bool_value();
    case google::protobuf::Value::kNullValue:
      return true;
    default:
      return google::protobuf::util::MessageDifferencer::Equals(a, b);
  }
}

bool ParamsEqual(const v1::Run& a, const v1::Run& b) {
  if (a.params_size() != b.params_size()) return false;
  for (const auto& [path, value] : a.params()) {
    auto it = b.params().find(path);
    if (it == b.params().end() || !ValuesEqual(value, it->second)) return false;
  }
  return true;
}

// Position in `baseline.runs` of the run with the same params, or -1.
int FindMatch(const v1::Result& baseline, const v1::Run& run) {
  for (int i = 0; i < baseline.runs_size(); ++i) {
    if (ParamsEqual(baseline.runs(i), run)) return i;
  }
  return -1;
}

template <typename Map>
std::set<std::string> Keys(const Map& a, const Map& b) {
  std::set<std::string> keys;
  for (const auto& [k, v] : a) keys.insert(k);
  for (const auto& [k, v] : b) keys.insert(k);
  return keys;
}

Fields FloodFields(const std::string& name, const v1::Flood& f,
                   const std::set<std::string>& errnos) {
  const std::string p = absl::StrCat("floods.", name, ".");
  Fields out = {{p + "attempted", f.attempted()},
                {p + "established", f.established()},
                {p + "reset", f.reset()},
                {p + "refused", f.refused()},
                {p + "timed_out", f.timed_out()}};
  for (const std::string& e : errnos) {
    auto it = f.errors().find(e);
    out.emplace_back(p + "errors." + e, it == f.errors().end() ? 0 : it->second);
  }
  const v1::Fates& fa = f.fates();
  auto joined = [](bool has, uint32_t n) { return has ? std::optional<double>(n) : std::nullopt; };
  const std::optional<double> fates[] = {joined(fa.has_accepted(), fa.accepted()),
                                         joined(fa.has_queued(), fa.queued()),
                                         joined(fa.has_syn_recv(), fa.syn_recv()),
                                         joined(fa.has_unknown_to_server(), fa.unknown_to_server()),
                                         static_cast<double>(fa.reset()),
                                         static_cast<double>(fa.refused()),
                                         static_cast<double>(fa.timed_out()),
                                         static_cast<double>(fa.error()),
                                         static_cast<double>(fa.established_unjoined())};
  for (size_t i = 0; i < std::size(kFateCounts); ++i) {
    out.emplace_back(absl::StrCat(p, "fates.", kFateCounts[i]), fates[i]);
  }
  const v1::LatencySummary& l = f.connect_latency_ms();
  const double latencies[] = {l.p50(), l.p90(), l.p99(), l.max()};
  for (size_t i = 0; i < std::size(kLatencies); ++i) {
    out.emplace_back(
        absl::StrCat(p, "connect_latency_ms.", kLatencies[i]),
        f.has_connect_latency_ms() ? std::optional<double>(latencies[i]) : std::nullopt);
  }
  return out;
}

Fields ListenerFields(const std::string& name, const v1::Listener& l) {
  const std::string p = absl::StrCat("listeners.", name, ".");
  return {{p + "backlog_effective",
           l.has_backlog_effective() ? std::optional<double>(l.backlog_effective()) : std::nullopt},
          {p + "accepted", l.accepted()},
          {p + "accept_queue_peak", l.accept_queue_peak()}};
}

Fields HostFields(const std::string& name, const v1::Host& h) {
  Fields out;
  for (const auto& [c, compared] : result::kHandshakeCounters) {
    if (!compared) continue;
    auto it = h.counters().find(c);
    std::optional<double> value;
    if (it != h.counters().end()) {
      value = it->second;
    } else if (h.counters_unavailable().empty() && h.error().empty()) {
      value = 0.0;  // collected, and the counter did not move
    }
    out.emplace_back(absl::StrCat("hosts.", name, ".counters.", c), value);
  }
  return out;
}

v1::BaselineCheck MakeCheck(const std::string& field, double baseline, double current,
                            double tolerance) {
  v1::BaselineCheck check;
  check.set_field(field);
  check.set_baseline(baseline);
  check.set_current(current);
  check.set_tolerance_percent(tolerance);
  if (baseline == 0) {
    check.set_passed(current == 0);
    if (current != 0) check.set_note("baseline is 0: any change exceeds a percent tolerance");
  } else {
    // The relative factor absorbs rounding, so a change of exactly the tolerance passes.
    check.set_passed(std::fabs(current - baseline) <=
                     tolerance / 100.0 * std::fabs(baseline) * (1 + 1e-9));
  }
  return check;
}

v1::BaselineCheck MissingCheck(const std::string& field, bool in_baseline) {
  v1::BaselineCheck check;
  check.set_field(field);
  check.set_passed(false);
  check.set_note(in_baseline ? "not in this run" : "not in the baseline run");
  return check;
}

// Compares one run with its baseline run, object kind by object kind, names in sorted order.
void CompareRun(const v1::Run& old_run, const Tolerances& tolerances, v1::Run* run,
                v1::BaselineComparison* out) {
  auto add = [&](const Fields& olds, const Fields& news) {
    for (size_t i = 0; i < news.size() && i < olds.size(); ++i) {
      const auto& [field, current] = news[i];
      const std::optional<double>& baseline = olds[i].second;
      if (!current && !baseline) continue;  // measured in neither run: nothing to compare
      if (!current || !baseline) {
        v1::BaselineCheck check;
        check.set_field(field);
        check.set_passed(false);
        check.set_tolerance_percent(tolerances.For(field));
        if (baseline) check.set_baseline(*baseline);
        if (current) check.set_current(*current);
        check.set_note(baseline ? "not_observed in this run" : "not_observed in the baseline run");
        *out->add_checks() = check;
        continue;
      }
      *out->add_checks() = MakeCheck(field, *baseline, *current, tolerances.For(field));
    }
  };
  for (const std::string& name : Keys(old_run.floods(), run->floods())) {
    auto o = old_run.floods().find(name);
    auto n = run->floods().find(name);
    if (o == old_run.floods().end() || n == run->floods().end()) {
      *out->add_checks() = MissingCheck("floods." + name, o != old_run.floods().end());
      continue;
    }
    const std::set<std::string> errnos = Keys(o->second.errors(), n->second.errors());
    add(FloodFields(name, o->second, errnos), FloodFields(name, n->second, errnos));
  }
  for (const std::string& name : Keys(old_run.listeners(), run->listeners())) {
    auto o = old_run.listeners().find(name);
    auto n = run->listeners().find(name);
    if (o == old_run.listeners().end() || n == run->listeners().end()) {
      *out->add_checks() = MissingCheck("listeners." + name, o != old_run.listeners().end());
      continue;
    }
    add(ListenerFields(name, o->second), ListenerFields(name, n->second));
  }
  for (const std::string& name : Keys(old_run.hosts(), run->hosts())) {
    auto o = old_run.hosts().find(name);
    auto n = run->hosts().find(name);
    if (o == old_run.hosts().end() || n == run->hosts().end()) {
      *out->add_checks() = MissingCheck("hosts." + name, o != old_run.hosts().end());
      continue;
    }
    add(HostFields(name, o->second), HostFields(name, n->second));
  }
  out->set_passed(std::all_of(out->checks().begin(), out->checks().end(),
                              [](const v1::BaselineCheck& c) { return c.passed(); }));
}

std::string RunLabel(const v1::Run& run) {
  const std::string params = DescribeParams(run);
  return params.empty() ? absl::StrCat("run ", run.index())
                        : absl::StrCat("run ", run.index(), " [", params, "]");
}

// Lines of a table of rows (label, old, new), changed rows marked.
void SideBySide(const std::vector<std::array<std::string, 3>>& rows, std::string* out) {
  size_t w0 = 0;
  size_t w1 = 3;
  for (const auto& r : rows) {
    w0 = std::max(w0, r[0].size());
    w1 = std::max(w1, r[1].size());
  }
  absl::StrAppend(out, "    ", std::string(w0, ' '), "  ", absl::StrFormat("%-*s", w1, "old"),
                  "  new\n");
  for (const auto& r : rows) {
    std::string line = absl::StrFormat("    %-*s  %-*s  %s", w0, r[0], w1, r[1], r[2]);
    if (r[1] != r[2]) absl::StrAppend(&line, "   <- changed");
    absl::StrAppend(out, line, "\n");
  }
}

std::string SettingValue(const v1::Host* host, const std::string& key) {
  if (host == nullptr) return "-";
  auto it = host->settings().find(key);
  return it == host->settings().end() ? "-" : absl::StrCat(it->second);
}

const v1::Host* FindHost(const v1::Run& run, const std::string& name) {
  auto it = run.hosts().find(name);
  return it == run.hosts().end() ? nullptr : &it->second;
}

}  // namespace

double Tolerances::For(const std::string& field) const {
  double best = default_percent.value_or(kDefaultTolerancePercent);
  int best_literals = -1;
  const std::vector<std::string> segments = Segments(field);
  for (const auto& [pattern, percent] : fields) {
    const std::vector<std::string> p = Segments(pattern);
    if (!PatternMatches(p, segments)) continue;
    const int literals = static_cast<int>(
        std::count_if(p.begin(), p.end(), [](const std::string& s) { return s != "*"; }));
    if (literals >= best_literals) {
      best_literals = literals;
      best = percent;
    }
  }
  return best;
}

Tolerances TolerancesFromScenario(const BaselineDef& def) {
  Tolerances t;
  t.default_percent = def.tolerance_percent;
  t.fields = def.fields;
  return t;
}

Tolerances MergeTolerances(const Tolerances& scenario, const Tolerances& command_line) {
  Tolerances t = scenario;
  if (command_line.default_percent) t.default_percent = command_line.default_percent;
  t.fields.insert(t.fields.end(), command_line.fields.begin(), command_line.fields.end());
  return t;
}

absl::Status ValidateTolerancePattern(const std::string& pattern) {
  const std::vector<std::string> p = Segments(pattern);
  for (const std::string& s : p) {
    if (s.empty()) return absl::InvalidArgumentError("a path segment is empty");
    if (s != "*" && s.find('*') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("'*' stands for a whole segment, not part of one (\"", s, "\")"));
    }
  }
  for (const std::string& t : FieldTemplates()) {
    if (Compatible(p, Segments(t))) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      "matches no compared field (compared: floods.NAME.{attempted,established,reset,refused,"
      "timed_out}, floods.NAME.errors.ERRNO, floods.NAME.fates.FATE, "
      "floods.NAME.connect_latency_ms.{p50,p90,p99,max}, "
      "listeners.NAME.{backlog_effective,accepted,accept_queue_peak}, "
      "hosts.NAME.counters.COUNTER)");
}

absl::StatusOr<Tolerances> ParseToleranceFlags(const std::string& tolerance,
                                               const std::vector<std::string>& field_flags) {
  Tolerances t;
  if (!tolerance.empty()) {
    absl::StatusOr<double> v = ParsePercentText(tolerance);
    if (!v.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tolerance \"", tolerance, "\": ", v.status().message()));
    }
    t.default_percent = *v;
  }
  for (const std::string& flag : field_flags) {
    const size_t eq = flag.rfind('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tolerance-field \"", flag,
                       "\": expected PATTERN=PERCENT like floods.*.connect_latency_ms.p99=25%"));
    }
    const std::string pattern(absl::StripAsciiWhitespace(flag.substr(0, eq)));
    absl::StatusOr<double> v = ParsePercentText(flag.substr(eq + 1));
    if (!v.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tolerance-field \"", flag, "\": ", v.status().message()));
    }
    if (absl::Status s = ValidateTolerancePattern(pattern); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tolerance-field \"", flag, "\": pattern ", pattern, " ", s.message()));
    }
    t.fields.emplace_back(pattern, *v);
  }
  return t;
}

bool CompareWithBaseline(const v1::Result& baseline, const std::string& baseline_file,
                         const Tolerances& tolerances, v1::Result* current) {
  current->set_baseline_file(baseline_file);
  bool passed = true;
  int matched = 0;
  for (v1::Run& run : *current->mutable_runs()) {
    v1::BaselineComparison* cmp = run.mutable_baseline();
    cmp->Clear();
    cmp->set_file(baseline_file);
    const int match = FindMatch(baseline, run);
    cmp->set_baseline_run_index(match < 0 ? -1 : baseline.runs(match).index());
    if (match < 0) {
      const std::string params = DescribeParams(run);
      cmp->set_note(absl::StrCat("no baseline run with params ", params.empty() ? "(none)" : params,
                                 ": not compared"));
      cmp->set_passed(true);
      continue;
    }
    ++matched;
    CompareRun(baseline.runs(match), tolerances, &run, cmp);
    passed = passed && cmp->passed();
  }
  if (matched == 0 && !current->runs().empty()) {
    // Nothing was compared at all: a wrong baseline file, not a pass. Every run says so.
    for (v1::Run& run : *current->mutable_runs()) {
      run.mutable_baseline()->set_passed(false);
      run.mutable_baseline()->set_note(absl::StrCat(run.baseline().note(), "; no run of ",
                                                    baseline_file,
                                                    " has the params of any run of this result"));
    }
    return false;
  }
  return passed;
}

std::string DescribeCheck(const v1::BaselineCheck& check) {
  if (!check.note().empty() && check.baseline() == 0 && check.current() == 0 && !check.passed()) {
    return absl::StrCat(check.field(), ": ", check.note());
  }
  std::string change;
  if (check.baseline() != 0) {
    change = absl::StrFormat(
        " (%+.1f%%)", (check.current() - check.baseline()) / std::fabs(check.baseline()) * 100.0);
  } else if (check.current() != 0) {
    change = " (from 0)";
  }
  std::string s = absl::StrCat(check.field(), ": ", FormatValue(check.baseline()), " -> ",
                               FormatValue(check.current()), change, ", tolerance ",
                               FormatValue(check.tolerance_percent()), "%");
  if (!check.note().empty()) absl::StrAppend(&s, " (", check.note(), ")");
  return s;
}

std::string DescribeParams(const v1::Run& run) { return result::ParamsText(run, ", "); }

std::string RenderComparison(const v1::Result& old_result, const std::string& old_file,
                             const v1::Result& new_result, const std::string& new_file,
                             const Tolerances& tolerances) {
  v1::Result compared = new_result;
  const bool passed = CompareWithBaseline(old_result, old_file, tolerances, &compared);
  std::string out;
  auto describe = [](const v1::Result& r) {
    return absl::StrCat("scenario ", r.scenario().empty() ? "(unnamed)" : r.scenario(), ", ",
                        r.runs_size(), r.runs_size() == 1 ? " run" : " runs");
  };
  absl::StrAppend(&out, "old: ", old_file, " (", describe(old_result), ")\n");
  absl::StrAppend(&out, "new: ", new_file, " (", describe(new_result), ")\n");

  // Hosts side by side, from the first matched pair of runs (else the first run of each).
  const v1::Run* old_run = old_result.runs().empty() ? nullptr : &old_result.runs(0);
  const v1::Run* new_run = compared.runs().empty() ? nullptr : &compared.runs(0);
  for (const v1::Run& run : compared.runs()) {
    const int idx = run.baseline().baseline_run_index();
    if (idx < 0) continue;
    for (const v1::Run& o : old_result.runs()) {
      if (o.index() == idx) {
        old_run = &o;
        new_run = &run;
        break;
      }
    }
    if (new_run == &run) break;
  }
  static const v1::Run kEmpty;
  const v1::Run& o = old_run ? *old_run : kEmpty;
  const v1::Run& n = new_run ? *new_run : kEmpty;
  absl::StrAppend(&out, "\nhosts (old ", old_run ? RunLabel(o) : "no run", " vs new ",
                  new_run ? RunLabel(n) : "no run", "):\n");
  for (const std::string& name : Keys(o.hosts(), n.hosts())) {
    const v1::Host* oh = FindHost(o, name);
    const v1::Host* nh = FindHost(n, name);
    absl::StrAppend(&out, "  ", name, "\n");
    std::vector<std::array<std::string, 3>> rows;
    rows.push_back({"kernel", oh ? oh->kernel() : "-", nh ? nh->kernel() : "-"});
    std::set<std::string> keys;
    if (oh) keys = Keys(oh->settings(), nh ? nh->settings() : oh->settings());
    if (!oh && nh) keys = Keys(nh->settings(), nh->settings());
    for (const std::string& key : keys) {
      rows.push_back({key, SettingValue(oh, key), SettingValue(nh, key)});
    }
    SideBySide(rows, &out);
  }

  absl::StrAppend(&out, "\nruns:\n");
  int compared_runs = 0;
  int failed_runs = 0;
  int failed_checks = 0;
  for (const v1::Run& run : compared.runs()) {
    const v1::BaselineComparison& cmp = run.baseline();
    if (cmp.baseline_run_index() < 0) {
      absl::StrAppend(&out, "  ", RunLabel(run), ": ", cmp.note(), "\n");
      continue;
    }
    ++compared_runs;
    int failed = 0;
    for (const v1::BaselineCheck& c : cmp.checks()) failed += c.passed() ? 0 : 1;
    failed_checks += failed;
    failed_runs += failed > 0 ? 1 : 0;
    absl::StrAppend(&out, "  ", RunLabel(run), " vs old run ", cmp.baseline_run_index(), ": ",
                    failed == 0 ? "pass" : absl::StrCat(failed, " regressed"), ", ",
                    cmp.checks_size() - failed, " of ", cmp.checks_size(), " checks passed\n");
    // Settings that differ in this pair (a sweep changes them run by run).
    if (compared.runs_size() > 1) {
      for (const v1::Run& o2 : old_result.runs()) {
        if (o2.index() != cmp.baseline_run_index()) continue;
        for (const std::string& host : Keys(o2.hosts(), run.hosts())) {
          const v1::Host* oh = FindHost(o2, host);
          const v1::Host* nh = FindHost(run, host);
          if (!oh || !nh) continue;
          for (const std::string& key : Keys(oh->settings(), nh->settings())) {
            if (SettingValue(oh, key) != SettingValue(nh, key)) {
              absl::StrAppend(&out, "    setting ", host, " ", key, ": ", SettingValue(oh, key),
                              " -> ", SettingValue(nh, key), "\n");
            }
          }
        }
        break;
      }
    }
    for (const v1::BaselineCheck& c : cmp.checks()) {
      if (!c.passed()) absl::StrAppend(&out, "    REGRESSION ", DescribeCheck(c), "\n");
    }
  }
  for (const v1::Run& o2 : old_result.runs()) {
    if (FindMatch(compared, o2) < 0) {
      absl::StrAppend(&out, "  old ", RunLabel(o2), ": no new run with these params\n");
    }
  }

  if (compared_runs == 0 && !compared.runs().empty()) {
    absl::StrAppend(&out, "\nFAIL: no run of ", new_file, " matches a run of ", old_file,
                    " by params\n");
  } else if (passed) {
    absl::StrAppend(&out, "\nPASS: ", compared_runs, compared_runs == 1 ? " run" : " runs",
                    " compared, no regression\n");
  } else {
    absl::StrAppend(&out, "\nREGRESSION: ", failed_checks, " failed checks in ", failed_runs,
                    " of ", compared_runs, " compared runs\n");
  }
  return out;
}

}  // namespace synq::controller::verdict
