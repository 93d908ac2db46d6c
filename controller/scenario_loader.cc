#include "controller/scenario_loader.h"

#include <yaml-cpp/yaml.h>

#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "common/net_address.h"

namespace synq::controller {
namespace {

using std::chrono::nanoseconds;
using ErrorList = std::vector<ScenarioError>;

constexpr int64_t kMaxConnections = 10'000'000;
constexpr int64_t kMaxConcurrency = 1'000'000;
constexpr size_t kMaxHostNameLength = 15;  // IFNAMSIZ - 1: host names become netns/veth names
constexpr size_t kMaxItemNameLength = 64;
// Every run of a sweep is a real load test lasting seconds; more than this is a typo.
constexpr uint64_t kMaxRuns = 100'000;
// Keeps duration arithmetic far from int64 overflow (~31 years).
constexpr double kMaxDurationNs = 1e18;
constexpr double kMaxRateBits = 1e15;  // 1 Pbit/s

// A YAML scalar as the field parsers see it. `quoted` separates `port: "80"` (a string, so
// the wrong type for an integer field) from `port: 80`.
struct Scalar {
  std::string text;
  bool quoted = false;
};

absl::Status Invalid(absl::string_view message) { return absl::InvalidArgumentError(message); }

std::string Quote(absl::string_view text) { return absl::StrCat("'", text, "'"); }

// ---------------------------------------------------------------------------------------------
// Field value parsers: shared by the file fields and the sweep values, so a swept value is
// validated exactly like the field it replaces.

absl::StatusOr<int64_t> ParseInt(const Scalar& s, int64_t min, int64_t max) {
  int64_t value = 0;
  if (s.quoted || !absl::SimpleAtoi(s.text, &value)) {
    return Invalid(
        absl::StrCat("expected an integer, got ", s.quoted ? "the string " : "", Quote(s.text)));
  }
  if (value < min || value > max) {
    if (max == std::numeric_limits<int64_t>::max()) {
      return Invalid(absl::StrCat("must be at least ", min, ", got ", value));
    }
    return Invalid(absl::StrCat("must be between ", min, " and ", max, ", got ", value));
  }
  return value;
}

bool LooksNumeric(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  if (!text.empty() && (text.front() == '-' || text.front() == '+')) text.remove_prefix(1);
  return !text.empty() && (absl::ascii_isdigit(text.front()) || text.front() == '.');
}

absl::StatusOr<double> ParseNumber(const Scalar& s, double min, double max) {
  double value = 0;
  if (s.quoted || !LooksNumeric(s.text) || !absl::SimpleAtod(s.text, &value) ||
      !std::isfinite(value)) {
    return Invalid(
        absl::StrCat("expected a number, got ", s.quoted ? "the string " : "", Quote(s.text)));
  }
  if (value < min || value > max) {
    if (max == std::numeric_limits<double>::max()) {
      return Invalid(absl::StrCat("must be at least ", min, ", got ", s.text));
    }
    return Invalid(absl::StrCat("must be between ", min, " and ", max, ", got ", s.text));
  }
  return value;
}

std::optional<bool> BoolFromText(absl::string_view text) {
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  return std::nullopt;
}

absl::StatusOr<bool> ParseBool(const Scalar& s) {
  const std::optional<bool> value = s.quoted ? std::nullopt : BoolFromText(s.text);
  if (!value) {
    return Invalid(absl::StrCat("expected a boolean (true or false), got ",
                                s.quoted ? "the string " : "", Quote(s.text)));
  }
  return *value;
}

absl::StatusOr<nanoseconds> ParseDurationAtLeast(const Scalar& s, bool allow_zero) {
  absl::StatusOr<nanoseconds> d = ParseDuration(s.text);
  if (!d.ok()) return d;
  if (!allow_zero && d->count() == 0) {
    return Invalid(absl::StrCat("must be greater than 0, got ", Quote(s.text)));
  }
  return d;
}

absl::StatusOr<std::string> ParseNonEmpty(const Scalar& s) {
  if (s.text.empty()) return Invalid("must not be empty");
  return s.text;
}

// tc-style rates: "10mbit", "1gbit", "500kbit", "64000bit" or a bare number of bits/s.
absl::StatusOr<uint64_t> ParseRate(const Scalar& s) {
  const std::string text = absl::AsciiStrToLower(absl::StripAsciiWhitespace(s.text));
  static constexpr std::array<std::pair<absl::string_view, double>, 5> kUnits = {
      {{"tbit", 1e12}, {"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}}};
  absl::string_view number = text;
  double scale = 1;
  for (const auto& [suffix, factor] : kUnits) {
    if (absl::EndsWith(text, suffix)) {
      number = absl::string_view(text).substr(0, text.size() - suffix.size());
      scale = factor;
      break;
    }
  }
  double value = 0;
  if (number.empty() || !absl::ascii_isdigit(number.front()) || !absl::SimpleAtod(number, &value) ||
      !std::isfinite(value)) {
    return Invalid(absl::StrCat("expected a rate in bits/s like 10mbit, 1gbit or a number, got ",
                                Quote(s.text)));
  }
  value *= scale;
  if (value > kMaxRateBits) return Invalid(absl::StrCat("rate ", Quote(s.text), " is too large"));
  return static_cast<uint64_t>(std::llround(value));
}

// Assigns a parsed value to a field, converting the type (e.g. int64 ms into nanoseconds).
template <typename T, typename U>
absl::Status Assign(absl::StatusOr<T> value, U& out) {
  if (!value.ok()) return value.status();
  out = static_cast<U>(*std::move(value));
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Field tables: name -> setter. The loader and the sweep both go through these.

template <typename T>
struct FieldSpec {
  absl::Status (*set)(const Scalar&, T&);
  bool sweepable;
};
template <typename T>
using FieldTable = std::map<std::string, FieldSpec<T>, std::less<>>;

const FieldTable<ListenerDef>& ListenerFields() {
  static const auto* table = new FieldTable<ListenerDef>{
      {"port",
       {[](const Scalar& s, ListenerDef& l) { return Assign(ParseInt(s, 0, 65535), l.port); },
        true}},
      {"backlog",
       {[](const Scalar& s, ListenerDef& l) {
          return Assign(
              ParseInt(s, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()),
              l.backlog);
        },
        true}},
      {"accept",
       {[](const Scalar& s, ListenerDef& l) {
          if (s.text == "never") {
            l.accept = AcceptMode::kNever;
          } else if (s.text == "paced") {
            l.accept = AcceptMode::kPaced;
          } else if (s.text == "immediate") {
            l.accept = AcceptMode::kImmediate;
          } else {
            return Invalid(
                absl::StrCat("expected one of never, paced, immediate, got ", Quote(s.text)));
          }
          return absl::OkStatus();
        },
        true}},
      {"accept_interval",
       {[](const Scalar& s, ListenerDef& l) {
          return Assign(ParseDurationAtLeast(s, /*allow_zero=*/false), l.accept_interval);
        },
        true}},
      {"close_on_accept",
       {[](const Scalar& s, ListenerDef& l) { return Assign(ParseBool(s), l.close_on_accept); },
        true}},
      {"address",
       {[](const Scalar& s, ListenerDef& l) {
          absl::StatusOr<common::SocketAddress> address = common::ParseHostAddress(s.text, 0);
          if (!address.ok()) return address.status();
          l.address = s.text;
          return absl::OkStatus();
        },
        true}},
  };
  return *table;
}

const FieldTable<FloodDef>& FloodFields() {
  static const auto* table = new FieldTable<FloodDef>{
      {"target",
       {[](const Scalar& s, FloodDef& f) { return Assign(ParseNonEmpty(s), f.target); }, true}},
      {"connections",
       {[](const Scalar& s, FloodDef& f) {
          return Assign(ParseInt(s, 1, kMaxConnections), f.connections);
        },
        true}},
      {"concurrency",
       {[](const Scalar& s, FloodDef& f) {
          return Assign(ParseInt(s, 1, kMaxConcurrency), f.concurrency);
        },
        true}},
      {"rate",
       {[](const Scalar& s, FloodDef& f) {
          return Assign(ParseNumber(s, 0, std::numeric_limits<double>::max()), f.rate);
        },
        true}},
      {"connect_timeout",
       {[](const Scalar& s, FloodDef& f) {
          return Assign(ParseDurationAtLeast(s, false), f.connect_timeout);
        },
        true}},
      {"start_after",
       {[](const Scalar& s, FloodDef& f) {
          return Assign(ParseDurationAtLeast(s, true), f.start_after);
        },
        true}},
      {"hold",
       {[](const Scalar& s, FloodDef& f) { return Assign(ParseDurationAtLeast(s, true), f.hold); },
        true}},
      {"payload",
       {[](const Scalar& s, FloodDef& f) {
          f.payload = s.text;
          return absl::OkStatus();
        },
        true}},
  };
  return *table;
}

const FieldTable<ShapingDef>& ShapingFields() {
  static const auto* table = new FieldTable<ShapingDef>{
      {"to",
       {[](const Scalar& s, ShapingDef& d) { return Assign(ParseNonEmpty(s), d.to); }, false}},
      {"delay",
       {[](const Scalar& s, ShapingDef& d) {
          return Assign(ParseDurationAtLeast(s, true), d.delay);
        },
        true}},
      {"jitter",
       {[](const Scalar& s, ShapingDef& d) {
          return Assign(ParseDurationAtLeast(s, true), d.jitter);
        },
        true}},
      {"loss",
       {[](const Scalar& s, ShapingDef& d) {
          return Assign(ParseNumber(s, 0, 100), d.loss_percent);
        },
        true}},
      {"rate",
       {[](const Scalar& s, ShapingDef& d) { return Assign(ParseRate(s), d.rate_bits_per_second); },
        true}},
      {"backend",
       {[](const Scalar& s, ShapingDef& d) {
          if (s.text == "auto") {
            d.backend = ShapingBackend::kAuto;
          } else if (s.text == "netem") {
            d.backend = ShapingBackend::kNetem;
          } else if (s.text == "nfqueue") {
            d.backend = ShapingBackend::kNfqueue;
          } else {
            return Invalid(
                absl::StrCat("expected one of auto, netem, nfqueue, got ", Quote(s.text)));
          }
          return absl::OkStatus();
        },
        false}},
  };
  return *table;
}

template <typename T>
std::string FieldNames(const FieldTable<T>& table, bool sweepable_only) {
  std::vector<absl::string_view> names;
  for (const auto& [name, spec] : table) {
    if (!sweepable_only || spec.sweepable) names.push_back(name);
  }
  return absl::StrJoin(names, ", ");
}

struct SettingRange {
  absl::string_view key;
  int64_t min;
  int64_t max;
};
constexpr int64_t kIntMax = std::numeric_limits<int32_t>::max();
// clang-format off
constexpr std::array<SettingRange, 6> kSettings = {{
    {"net.core.somaxconn", 0, kIntMax},
    {"net.ipv4.tcp_abort_on_overflow", 0, 1},
    {"net.ipv4.tcp_synack_retries", 0, 255},
    {"net.ipv4.tcp_syn_retries", 1, 127},
    {"net.ipv4.tcp_syncookies", 0, 2},
    {"net.ipv4.tcp_max_syn_backlog", 1, kIntMax},
}};
// clang-format on

absl::Status CheckSettingKey(absl::string_view key) {
  for (const SettingRange& range : kSettings) {
    if (range.key == key) return absl::OkStatus();
  }
  return Invalid(
      absl::StrCat("unknown setting; allowed: ",
                   absl::StrJoin(kSettings, ", ", [](std::string* out, const SettingRange& range) {
                     absl::StrAppend(out, range.key);
                   })));
}

absl::StatusOr<int64_t> ParseSetting(absl::string_view key, const Scalar& s) {
  for (const SettingRange& range : kSettings) {
    if (range.key == key) return ParseInt(s, range.min, range.max);
  }
  return CheckSettingKey(key);
}

// ---------------------------------------------------------------------------------------------
// Names and paths.

bool IsValidHostName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxHostNameLength) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = absl::ascii_islower(c) || absl::ascii_isdigit(c) || (i > 0 && c == '-');
    if (!ok) return false;
  }
  return true;
}

// Listener and flood names appear in sweep paths ("listeners.l1.backlog") and flood targets,
// so no dots, brackets or colons.
bool IsValidItemName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxItemNameLength) return false;
  for (const char c : name) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_') return false;
  }
  return true;
}

std::string JoinPath(absl::string_view prefix, absl::string_view field) {
  if (prefix.empty()) return std::string(field);
  return absl::StrCat(prefix, ".", field);
}

std::string IndexPath(absl::string_view section, size_t index) {
  return absl::StrCat(section, "[", index, "]");
}

// "listeners.l1" when the item has a valid name it is the first to use, else "listeners[2]".
template <typename T>
std::string ItemPath(absl::string_view section, const std::vector<T>& items, size_t index) {
  if constexpr (requires { items[index].name; }) {
    const std::string& name = items[index].name;
    if (IsValidItemName(name)) {
      bool first = true;
      for (size_t i = 0; i < index; ++i) first = first && items[i].name != name;
      if (first) return JoinPath(section, name);
    }
  }
  return IndexPath(section, index);
}

absl::string_view Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "a scalar";
    default:
      return "nothing (null)";
  }
}

bool IsQuoted(const YAML::Node& node) {
  return node.Tag() == "!" || node.Tag() == "tag:yaml.org,2002:str";
}

// A sweep value typed from its YAML scalar: quoted -> string, else int, bool, double, string.
SweepValue SweepValueOf(const YAML::Node& scalar) {
  const std::string& text = scalar.Scalar();
  if (IsQuoted(scalar)) return {SweepValue::Kind::kString, text};
  if (int64_t as_int = 0; absl::SimpleAtoi(text, &as_int)) {
    return {SweepValue::Kind::kInt, absl::StrCat(as_int)};
  }
  if (std::optional<bool> as_bool = BoolFromText(text)) {
    return {SweepValue::Kind::kBool, *as_bool ? "true" : "false"};
  }
  if (double as_double = 0;
      LooksNumeric(text) && absl::SimpleAtod(text, &as_double) && std::isfinite(as_double)) {
    return {SweepValue::Kind::kDouble, text};
  }
  return {SweepValue::Kind::kString, text};
}

// ---------------------------------------------------------------------------------------------
// Sweep targets: what a sweep path names, and applying a value to it.

struct SweepTarget {
  enum class Kind { kSampleInterval, kListener, kFlood, kShaping, kSetting };
  Kind kind = Kind::kSampleInterval;
  size_t index = 0;   // listener / flood / shaping index
  std::string host;   // settings host
  std::string field;  // field name, or the sysctl key for settings

  bool operator==(const SweepTarget&) const = default;
};

template <typename T>
absl::StatusOr<std::string> SweepableField(absl::string_view what, const FieldTable<T>& table,
                                           absl::string_view field) {
  auto it = table.find(field);
  if (it == table.end() || !it->second.sweepable) {
    return Invalid(absl::StrCat(what, " have no sweepable field ", Quote(field),
                                "; sweepable: ", FieldNames(table, true)));
  }
  return std::string(field);
}

template <typename T>
absl::StatusOr<size_t> IndexByName(const std::vector<T>& items, absl::string_view name,
                                   absl::string_view what) {
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].name == name) return i;
  }
  return Invalid(absl::StrCat("no ", what, " named ", Quote(name)));
}

absl::StatusOr<SweepTarget> ResolveSweepPath(const Scenario& s, absl::string_view path) {
  using Kind = SweepTarget::Kind;
  SweepTarget target;
  if (path == "sample_interval") return target;

  // Splits "<first>.<rest>"; the rest may contain dots only for settings keys.
  auto split =
      [](absl::string_view text) -> std::optional<std::pair<absl::string_view, absl::string_view>> {
    const size_t dot = text.find('.');
    if (dot == absl::string_view::npos || dot == 0 || dot + 1 == text.size()) return std::nullopt;
    return std::make_pair(text.substr(0, dot), text.substr(dot + 1));
  };
  const absl::string_view usage =
      "expected sample_interval, listeners.<name>.<field>, floods.<name>.<field>, "
      "settings.<host>.<key>, shaping[<i>].<field> or shaping.<host>.<field>";

  if (absl::ConsumePrefix(&path, "listeners.")) {
    auto parts = split(path);
    if (!parts) return Invalid(absl::StrCat("does not name a field; ", usage));
    target.kind = Kind::kListener;
    absl::StatusOr<size_t> index = IndexByName(s.listeners, parts->first, "listener");
    if (!index.ok()) return index.status();
    target.index = *index;
    absl::StatusOr<std::string> field =
        SweepableField("listeners", ListenerFields(), parts->second);
    if (!field.ok()) return field.status();
    target.field = *field;
    return target;
  }
  if (absl::ConsumePrefix(&path, "floods.")) {
    auto parts = split(path);
    if (!parts) return Invalid(absl::StrCat("does not name a field; ", usage));
    target.kind = Kind::kFlood;
    absl::StatusOr<size_t> index = IndexByName(s.floods, parts->first, "flood");
    if (!index.ok()) return index.status();
    target.index = *index;
    absl::StatusOr<std::string> field = SweepableField("floods", FloodFields(), parts->second);
    if (!field.ok()) return field.status();
    target.field = *field;
    return target;
  }
  if (absl::ConsumePrefix(&path, "settings.")) {
    auto parts = split(path);
    if (!parts) return Invalid(absl::StrCat("does not name a setting; ", usage));
    target.kind = Kind::kSetting;
    target.host = std::string(parts->first);
    if (s.FindHost(target.host) == nullptr) {
      return Invalid(absl::StrCat("no host named ", Quote(target.host)));
    }
    absl::Status key_ok = CheckSettingKey(parts->second);
    if (!key_ok.ok()) return key_ok;
    target.field = std::string(parts->second);
    return target;
  }
  if (absl::ConsumePrefix(&path, "shaping[")) {
    const size_t close = path.find("].");
    size_t index = 0;
    if (close == absl::string_view::npos || !absl::SimpleAtoi(path.substr(0, close), &index)) {
      return Invalid(absl::StrCat("does not name a field; ", usage));
    }
    if (index >= s.shaping.size()) {
      return Invalid(
          absl::StrCat("no shaping entry ", index, " (there are ", s.shaping.size(), ")"));
    }
    target.kind = Kind::kShaping;
    target.index = index;
    absl::StatusOr<std::string> field =
        SweepableField("shaping entries", ShapingFields(), path.substr(close + 2));
    if (!field.ok()) return field.status();
    target.field = *field;
    return target;
  }
  if (absl::ConsumePrefix(&path, "shaping.")) {
    auto parts = split(path);
    if (!parts) return Invalid(absl::StrCat("does not name a field; ", usage));
    std::vector<size_t> matches;
    for (size_t i = 0; i < s.shaping.size(); ++i) {
      if (s.shaping[i].host == parts->first) matches.push_back(i);
    }
    if (matches.empty()) {
      return Invalid(absl::StrCat("no shaping entry for host ", Quote(parts->first)));
    }
    if (matches.size() > 1) {
      return Invalid(absl::StrCat(matches.size(), " shaping entries for host ", Quote(parts->first),
                                  "; use shaping[<i>] to pick one"));
    }
    target.kind = Kind::kShaping;
    target.index = matches.front();
    absl::StatusOr<std::string> field =
        SweepableField("shaping entries", ShapingFields(), parts->second);
    if (!field.ok()) return field.status();
    target.field = *field;
    return target;
  }
  return Invalid(absl::StrCat("does not name a field; ", usage));
}

absl::Status ApplySweepValue(Scenario& s, const SweepTarget& target, const SweepValue& value) {
  const Scalar scalar{value.text, value.kind == SweepValue::Kind::kString};
  switch (target.kind) {
    case SweepTarget::Kind::kSampleInterval:
      return Assign(ParseDurationAtLeast(scalar, false), s.sample_interval);
    case SweepTarget::Kind::kListener:
      return ListenerFields().at(target.field).set(scalar, s.listeners.at(target.index));
    case SweepTarget::Kind::kFlood:
      return FloodFields().at(target.field).set(scalar, s.floods.at(target.index));
    case SweepTarget::Kind::kShaping:
      return ShapingFields().at(target.field).set(scalar, s.shaping.at(target.index));
    case SweepTarget::Kind::kSetting:
      return Assign(ParseSetting(target.field, scalar), s.settings[target.host][target.field]);
  }
  return absl::InternalError("unknown sweep target");
}

std::string DescribeValue(const SweepValue& value) {
  if (value.kind == SweepValue::Kind::kString) return absl::StrCat("'", value.text, "'");
  return value.text;
}

// ---------------------------------------------------------------------------------------------
// Checks that span fields, run on every concrete scenario (the base, or each sweep run). Each
// error lists the fields it depends on, so an error caused by a swept value can be reported
// against the sweep.

struct CrossError {
  ScenarioError error;
  std::vector<SweepTarget> involves;
};

std::vector<CrossError> CheckCrossFields(const Scenario& s) {
  std::vector<CrossError> out;
  for (size_t i = 0; i < s.listeners.size(); ++i) {
    const ListenerDef& l = s.listeners[i];
    if (l.accept == AcceptMode::kPaced && l.accept_interval.count() <= 0) {
      out.push_back({{JoinPath(ItemPath("listeners", s.listeners, i), "accept_interval"),
                      "accept: paced needs accept_interval > 0"},
                     {{SweepTarget::Kind::kListener, i, "", "accept"},
                      {SweepTarget::Kind::kListener, i, "", "accept_interval"}}});
    }
  }
  for (size_t i = 0; i < s.floods.size(); ++i) {
    const FloodDef& f = s.floods[i];
    if (f.target.empty() || s.FindListener(f.target) != nullptr) continue;
    std::string message;
    if (!absl::StrContains(f.target, ':')) {
      message = absl::StrCat("no listener named ", Quote(f.target));
    } else {
      absl::StatusOr<common::SocketAddress> address = common::ParseSocketAddress(f.target);
      if (!address.ok()) {
        message =
            absl::StrCat("neither a listener name nor ADDRESS:PORT: ", address.status().message());
      } else if (address->port() == 0) {
        message = absl::StrCat(Quote(f.target), ": port 0 cannot be connected to");
      }
    }
    if (message.empty()) continue;
    out.push_back({{JoinPath(ItemPath("floods", s.floods, i), "target"), std::move(message)},
                   {{SweepTarget::Kind::kFlood, i, "", "target"}}});
  }
  return out;
}

// Walks every combination of axis values, first axis outermost. `visit` gets the value index
// per axis; returns false to stop.
void ForEachCombination(const std::vector<size_t>& sizes,
                        const std::function<bool(const std::vector<size_t>&)>& visit) {
  std::vector<size_t> indices(sizes.size(), 0);
  for (size_t size : sizes) {
    if (size == 0) return;
  }
  while (true) {
    if (!visit(indices)) return;
    size_t axis = sizes.size();
    while (axis > 0) {
      --axis;
      if (++indices[axis] < sizes[axis]) break;
      indices[axis] = 0;
      if (axis == 0) return;
    }
    if (sizes.empty()) return;
  }
}

// Number of runs, saturating at kMaxRuns + 1.
uint64_t CountRuns(const std::vector<SweepAxis>& axes) {
  uint64_t runs = 1;
  for (const SweepAxis& axis : axes) {
    runs *= axis.values.size();
    if (runs > kMaxRuns) return kMaxRuns + 1;
  }
  return runs;
}

// ---------------------------------------------------------------------------------------------
// The loader: walks the YAML tree, collects every error. yaml-cpp is only read through
// Type()/Scalar()/Tag()/iteration, which do not throw on a loaded tree; LoadScenario still
// catches at the boundary in case.

class Loader {
 public:
  LoadResult Load(const YAML::Node& root);

 private:
  using Entries = std::vector<std::pair<std::string, YAML::Node>>;

  void Error(std::string path, absl::string_view message) {
    errors_.push_back({std::move(path), std::string(message)});
  }
  void Error(std::string path, const absl::Status& status) {
    Error(std::move(path), status.message());
  }

  // A map's entries in file order; non-scalar and duplicate keys are reported and dropped.
  // With `duplicates`, duplicate keys are handed back instead, for the caller to report once it
  // knows the item's path.
  Entries MapEntries(const YAML::Node& map, const std::string& path,
                     std::vector<std::string>* duplicates = nullptr);
  // The scalar at `node`, or an error "expected <what>, got a map".
  std::optional<Scalar> GetScalar(const YAML::Node& node, const std::string& path,
                                  absl::string_view what);
  std::string ResolveHost(const Entries& entries, const std::string& item_path);
  void CheckHostRef(const std::string& host, const std::string& path);

  void ParseHosts(const YAML::Node* node);
  void ParseSettings(const YAML::Node& node);
  void ParseCaptures(const YAML::Node& node);
  template <typename T>
  void ParseItems(const YAML::Node& node, const std::string& section, const FieldTable<T>& fields,
                  std::vector<T>& out);
  void ParseSweep(const YAML::Node& node);
  void ParseExpect(const YAML::Node& node);
  void ParseBaseline(const YAML::Node& node);
  void CheckCombinations();

  Scenario s_;
  ErrorList errors_;
  // Listeners whose file sets accept_interval; only meaningful when accept is paced.
  std::vector<size_t> literal_intervals_;
  std::vector<SweepTarget> sweep_targets_;  // parallel to s_.sweep
  bool sweep_ok_ = true;
};

Loader::Entries Loader::MapEntries(const YAML::Node& map, const std::string& path,
                                   std::vector<std::string>* duplicates) {
  Entries out;
  std::set<std::string> seen;
  for (auto it = map.begin(); it != map.end(); ++it) {
    if (!it->first.IsScalar()) {
      Error(path.empty() ? "<root>" : path, "keys must be plain strings");
      continue;
    }
    std::string key = it->first.Scalar();
    if (!seen.insert(key).second) {
      if (duplicates != nullptr) {
        duplicates->push_back(std::move(key));
      } else {
        Error(JoinPath(path, key), "duplicate field");
      }
      continue;
    }
    out.emplace_back(std::move(key), it->second);
  }
  return out;
}

std::optional<Scalar> Loader::GetScalar(const YAML::Node& node, const std::string& path,
                                        absl::string_view what) {
  if (!node.IsScalar()) {
    Error(path, absl::StrCat("expected ", what, ", got ", Describe(node)));
    return std::nullopt;
  }
  return Scalar{node.Scalar(), IsQuoted(node)};
}

void Loader::CheckHostRef(const std::string& host, const std::string& path) {
  if (s_.FindHost(host) == nullptr) Error(path, absl::StrCat("no host named ", Quote(host)));
}

// The item's `host`, defaulting to the only host.
std::string Loader::ResolveHost(const Entries& entries, const std::string& item_path) {
  const std::string path = JoinPath(item_path, "host");
  for (const auto& [key, value] : entries) {
    if (key != "host") continue;
    std::optional<Scalar> host = GetScalar(value, path, "a host name");
    if (!host) return "";
    CheckHostRef(host->text, path);
    return host->text;
  }
  if (s_.hosts.size() == 1) return s_.hosts.front().name;
  Error(path, "required when there is more than one host");
  return "";
}

void Loader::ParseHosts(const YAML::Node* node) {
  if (node == nullptr) {
    s_.hosts.push_back({"local", ""});
    return;
  }
  if (!node->IsMap()) {
    Error("hosts", absl::StrCat("expected a map of host name -> {} or {agent: ADDRESS}, got ",
                                Describe(*node)));
    return;
  }
  for (const auto& [name, spec] : MapEntries(*node, "hosts")) {
    const std::string path = JoinPath("hosts", name);
    if (!IsValidHostName(name)) {
      Error(path, absl::StrCat("host names must match [a-z0-9][a-z0-9-]* and be at most ",
                               kMaxHostNameLength, " characters"));
    }
    HostSpec host{name, ""};
    if (spec.IsMap()) {
      for (const auto& [key, value] : MapEntries(spec, path)) {
        const std::string field_path = JoinPath(path, key);
        if (key == "interface") {
          std::optional<Scalar> interface = GetScalar(value, field_path, "an interface name");
          if (!interface) continue;
          if (interface->text.empty() || interface->text.size() > 15 ||
              interface->text.find_first_of("/ \t") != std::string::npos) {
            Error(field_path, "expected an interface name of 1 to 15 characters");
          }
          host.interface = interface->text;
          continue;
        }
        if (key != "agent") {
          Error(field_path, "unknown field");
          continue;
        }
        std::optional<Scalar> agent = GetScalar(value, field_path, "an agent address");
        if (!agent) continue;
        // Light check only: agents may be named by DNS ("agent-0.synq:7700") in Kubernetes.
        absl::string_view text = agent->text;
        uint32_t port = 0;
        const size_t colon = text.rfind(':');
        if (absl::ConsumePrefix(&text, "unix:")) {
          if (text.empty()) Error(field_path, "unix: needs a socket path");
        } else if (colon == absl::string_view::npos || colon == 0 ||
                   !absl::SimpleAtoi(text.substr(colon + 1), &port) || port == 0 || port > 65535) {
          Error(field_path,
                absl::StrCat("expected HOST:PORT or unix:/path, got ", Quote(agent->text)));
        }
        host.agent = agent->text;
      }
    } else if (!spec.IsNull()) {
      Error(path, absl::StrCat("expected {} or {agent: ADDRESS}, got ", Describe(spec)));
    }
    for (const HostSpec& other : s_.hosts) {
      if (!host.embedded() && other.agent == host.agent) {
        // One agent holds one run at a time: two hosts on it would share (and fight over) it.
        Error(JoinPath(path, "agent"), absl::StrCat("same agent as hosts.", other.name));
      }
    }
    if (host.embedded() && !host.interface.empty()) {
      Error(JoinPath(path, "interface"), "only for hosts with an agent: embedded hosts use eth0");
    }
    s_.hosts.push_back(std::move(host));
  }
  if (node->size() == 0) Error("hosts", "needs at least one host");
}

void Loader::ParseSettings(const YAML::Node& node) {
  if (!node.IsMap()) {
    Error("settings",
          absl::StrCat("expected a map of host -> {sysctl: value}, got ", Describe(node)));
    return;
  }
  for (const auto& [host, keys] : MapEntries(node, "settings")) {
    const std::string path = JoinPath("settings", host);
    CheckHostRef(host, path);
    if (!keys.IsMap()) {
      Error(path, absl::StrCat("expected a map of sysctl -> integer, got ", Describe(keys)));
      continue;
    }
    for (const auto& [key, value] : MapEntries(keys, path)) {
      const std::string key_path = JoinPath(path, key);
      absl::Status key_ok = CheckSettingKey(key);
      if (!key_ok.ok()) {
        Error(key_path, key_ok);
        continue;
      }
      std::optional<Scalar> scalar = GetScalar(value, key_path, "an integer");
      if (!scalar) continue;
      absl::Status status = Assign(ParseSetting(key, *scalar), s_.settings[host][key]);
      if (!status.ok()) Error(key_path, status);
    }
  }
}

void Loader::ParseCaptures(const YAML::Node& node) {
  if (!node.IsSequence()) {
    Error("capture", absl::StrCat("expected a list of host names, got ", Describe(node)));
    return;
  }
  for (size_t i = 0; i < node.size(); ++i) {
    const std::string path = IndexPath("capture", i);
    std::optional<Scalar> host = GetScalar(node[i], path, "a host name");
    if (!host) continue;
    CheckHostRef(host->text, path);
    for (const CaptureDef& c : s_.captures) {
      if (c.host == host->text)
        Error(path, absl::StrCat("host ", Quote(host->text), " listed twice"));
    }
    s_.captures.push_back({host->text});
  }
}

template <typename T>
void Loader::ParseItems(const YAML::Node& node, const std::string& section,
                        const FieldTable<T>& fields, std::vector<T>& out) {
  constexpr bool kNamed = requires(T t) { t.name; };
  if (!node.IsSequence()) {
    Error(section, absl::StrCat("expected a list, got ", Describe(node)));
    return;
  }
  for (size_t i = 0; i < node.size(); ++i) {
    const YAML::Node item = node[i];
    out.emplace_back();
    T& def = out.back();
    if (!item.IsMap()) {
      Error(IndexPath(section, i), absl::StrCat("expected a map, got ", Describe(item)));
      continue;
    }
    std::vector<std::string> duplicates;
    const Entries entries = MapEntries(item, IndexPath(section, i), &duplicates);
    // The name comes first: it decides the path of every other error in this item.
    if constexpr (kNamed) {
      bool has_name = false;
      for (const auto& [key, value] : entries) {
        if (key != "name") continue;
        has_name = true;
        std::optional<Scalar> name =
            GetScalar(value, JoinPath(IndexPath(section, i), "name"), "a name");
        if (!name) break;
        def.name = name->text;
        if (!IsValidItemName(def.name)) {
          Error(JoinPath(IndexPath(section, i), "name"),
                absl::StrCat(Quote(def.name),
                             " is not a valid name: use letters, digits, - and _"
                             " (at most ",
                             kMaxItemNameLength, ")"));
        } else {
          for (size_t j = 0; j + 1 < out.size(); ++j) {
            if (out[j].name == def.name) {
              Error(JoinPath(IndexPath(section, i), "name"),
                    absl::StrCat("duplicate name ", Quote(def.name)));
              break;
            }
          }
        }
      }
      if (!has_name) Error(JoinPath(IndexPath(section, i), "name"), "required");
    }
    const std::string path = ItemPath(section, out, i);
    for (const std::string& key : duplicates) Error(JoinPath(path, key), "duplicate field");
    def.host = ResolveHost(entries, path);
    for (const auto& [key, value] : entries) {
      if (key == "host" || (kNamed && key == "name")) continue;
      const std::string field_path = JoinPath(path, key);
      auto field = fields.find(key);
      if (field == fields.end()) {
        Error(field_path, "unknown field");
        continue;
      }
      std::optional<Scalar> scalar = GetScalar(value, field_path, "a scalar value");
      if (!scalar) continue;
      absl::Status status = field->second.set(*scalar, def);
      if (!status.ok()) Error(field_path, status);
    }
    // Per-kind rules on what the file itself says.
    auto has = [&entries](absl::string_view key) {
      for (const auto& entry : entries) {
        if (entry.first == key) return true;
      }
      return false;
    };
    if constexpr (std::is_same_v<T, ListenerDef>) {
      if (has("accept_interval") && def.accept != AcceptMode::kPaced)
        literal_intervals_.push_back(i);
    }
    if constexpr (std::is_same_v<T, FloodDef>) {
      if (!has("target")) Error(JoinPath(path, "target"), "required");
    }
    if constexpr (std::is_same_v<T, ShapingDef>) {
      if (!def.to.empty()) {
        CheckHostRef(def.to, JoinPath(path, "to"));
        if (def.to == def.host) Error(JoinPath(path, "to"), "must differ from host");
      }
    }
  }
}

void Loader::ParseSweep(const YAML::Node& node) {
  if (!node.IsMap()) {
    Error("sweep", absl::StrCat("expected a map of path -> list of values, got ", Describe(node)));
    sweep_ok_ = false;
    return;
  }
  const size_t errors_before = errors_.size();
  for (const auto& [path, values] : MapEntries(node, "sweep")) {
    const std::string sweep_path = JoinPath("sweep", path);
    absl::StatusOr<SweepTarget> target = ResolveSweepPath(s_, path);
    if (!target.ok()) {
      Error(sweep_path, target.status());
      continue;
    }
    for (size_t i = 0; i < sweep_targets_.size(); ++i) {
      if (sweep_targets_[i] == *target) {
        Error(sweep_path, absl::StrCat("sweeps the same field as ", Quote(s_.sweep[i].path)));
      }
    }
    if (!values.IsSequence() || values.size() == 0) {
      Error(sweep_path, absl::StrCat("expected a non-empty list of values, got ",
                                     values.IsSequence() ? "an empty list" : Describe(values)));
      continue;
    }
    SweepAxis axis{path, {}};
    for (size_t i = 0; i < values.size(); ++i) {
      const YAML::Node item = values[i];
      if (!item.IsScalar()) {
        Error(sweep_path, absl::StrCat("value ", i, ": expected a scalar, got ", Describe(item)));
        continue;
      }
      SweepValue value = SweepValueOf(item);
      Scenario probe = s_;
      absl::Status applied = ApplySweepValue(probe, *target, value);
      if (!applied.ok()) {
        Error(sweep_path, absl::StrCat("value ", DescribeValue(value), ": ", applied.message()));
        continue;
      }
      axis.values.push_back(std::move(value));
    }
    s_.sweep.push_back(std::move(axis));
    sweep_targets_.push_back(*target);
  }
  sweep_ok_ = errors_.size() == errors_before;
  if (sweep_ok_ && CountRuns(s_.sweep) > kMaxRuns) {
    Error("sweep", absl::StrCat("more than ", kMaxRuns, " runs; sweep fewer values"));
    sweep_ok_ = false;
  }
}

// Cross-field errors of the base scenario, or of every sweep run. An error that depends on a
// swept field is reported against that sweep path with the values that cause it.
void Loader::CheckCombinations() {
  std::set<std::string> reported;
  auto report = [&](ScenarioError error) {
    if (reported.insert(error.ToString()).second) errors_.push_back(std::move(error));
  };
  auto swept_axes = [&](const CrossError& e) {
    std::vector<size_t> axes;
    for (size_t a = 0; a < sweep_targets_.size(); ++a) {
      for (const SweepTarget& t : e.involves) {
        if (t == sweep_targets_[a]) axes.push_back(a);
      }
    }
    return axes;
  };
  if (!sweep_ok_ || s_.sweep.empty()) {
    // Without a (valid) sweep, judge the base alone; skip errors a broken sweep may fix.
    for (CrossError& e : CheckCrossFields(s_)) {
      if (swept_axes(e).empty()) report(std::move(e.error));
    }
    return;
  }
  std::vector<size_t> sizes;
  for (const SweepAxis& axis : s_.sweep) sizes.push_back(axis.values.size());
  ForEachCombination(sizes, [&](const std::vector<size_t>& indices) {
    Scenario run = s_;
    for (size_t a = 0; a < indices.size(); ++a) {
      // Values were each applied successfully while parsing.
      (void)ApplySweepValue(run, sweep_targets_[a], s_.sweep[a].values[indices[a]]);
    }
    for (CrossError& e : CheckCrossFields(run)) {
      const std::vector<size_t> axes = swept_axes(e);
      if (axes.empty()) {
        report(std::move(e.error));
        continue;
      }
      std::vector<std::string> with;
      with.reserve(axes.size());
      for (size_t a : axes) {
        with.push_back(
            absl::StrCat(s_.sweep[a].path, "=", DescribeValue(s_.sweep[a].values[indices[a]])));
      }
      report({JoinPath("sweep", s_.sweep[axes.front()].path),
              absl::StrCat("with ", absl::StrJoin(with, ", "), ": ", e.error.ToString())});
    }
    return reported.size() < 100;  // enough to act on; avoid walking a huge sweep of failures
  });
}

void Loader::ParseExpect(const YAML::Node& node) {
  if (!node.IsSequence()) {
    Error("expect", absl::StrCat("expected a list of expressions, got ", Describe(node)));
    return;
  }
  for (size_t i = 0; i < node.size(); ++i) {
    const std::string path = IndexPath("expect", i);
    std::optional<Scalar> text = GetScalar(node[i], path, "an expression");
    if (!text) continue;
    if (absl::StripAsciiWhitespace(text->text).empty()) {
      Error(path, "must not be empty");
      continue;
    }
    s_.expectations.push_back({text->text, path});
  }
}

// "10%", "10" or "2.5%" -> 10 / 2.5 (percent, at least 0).
absl::StatusOr<double> ParsePercent(const Scalar& s) {
  absl::string_view text = absl::StripAsciiWhitespace(s.text);
  if (absl::EndsWith(text, "%")) text.remove_suffix(1);
  double v = 0;
  if (!absl::SimpleAtod(text, &v) || !(v >= 0) || v > 1e6) {
    return Invalid(absl::StrCat("expected a tolerance in percent like '10%', got ", Quote(s.text)));
  }
  return v;
}

void Loader::ParseBaseline(const YAML::Node& node) {
  if (!node.IsMap()) {
    Error("baseline", absl::StrCat("expected {tolerance: 10%, fields: {PATH: 25%}}, got ",
                                   Describe(node)));
    return;
  }
  for (const auto& [key, value] : MapEntries(node, "baseline")) {
    const std::string path = JoinPath("baseline", key);
    if (key == "tolerance") {
      if (std::optional<Scalar> text = GetScalar(value, path, "a percentage")) {
        absl::Status status = Assign(ParsePercent(*text), s_.baseline.tolerance_percent);
        if (!status.ok()) Error(path, status);
      }
    } else if (key == "fields") {
      if (!value.IsMap()) {
        Error(path, absl::StrCat("expected a map of field path -> tolerance, got ",
                                 Describe(value)));
        continue;
      }
      for (const auto& [field, tolerance] : MapEntries(value, path)) {
        const std::string field_path = JoinPath(path, field);
        std::optional<Scalar> text = GetScalar(tolerance, field_path, "a percentage");
        if (!text) continue;
        absl::StatusOr<double> percent = ParsePercent(*text);
        if (!percent.ok()) {
          Error(field_path, percent.status());
          continue;
        }
        s_.baseline.fields.emplace_back(field, *percent);
      }
    } else {
      Error(path, "unknown field (known: tolerance, fields)");
    }
  }
}

LoadResult Loader::Load(const YAML::Node& root) {
  static const std::set<std::string, std::less<>> kTopLevel = {
      "name",    "sample_interval", "hosts",  "settings", "shaping",
      "capture", "listeners",       "floods", "sweep",    "expect", "baseline"};
  if (!root.IsMap() && !root.IsNull()) {
    Error("<root>", absl::StrCat("expected a map of scenario fields, got ", Describe(root)));
    return {std::move(s_), std::move(errors_)};
  }
  std::map<std::string, YAML::Node, std::less<>> top;
  if (root.IsMap()) {
    for (auto& [key, value] : MapEntries(root, "")) {
      if (!kTopLevel.contains(key)) {
        Error(key, "unknown field");
        continue;
      }
      top.emplace(key, value);
    }
  }
  auto find = [&top](absl::string_view key) -> const YAML::Node* {
    auto it = top.find(key);
    return it == top.end() ? nullptr : &it->second;
  };

  if (const YAML::Node* name = find("name")) {
    if (std::optional<Scalar> text = GetScalar(*name, "name", "a string")) {
      s_.name = text->text;
      if (s_.name.empty()) Error("name", "must not be empty");
    }
  } else {
    Error("name", "required");
  }
  if (const YAML::Node* interval = find("sample_interval")) {
    if (std::optional<Scalar> text = GetScalar(*interval, "sample_interval", "a duration")) {
      absl::Status status = Assign(ParseDurationAtLeast(*text, false), s_.sample_interval);
      if (!status.ok()) Error("sample_interval", status);
    }
  }
  ParseHosts(find("hosts"));
  if (const YAML::Node* node = find("settings")) ParseSettings(*node);
  if (const YAML::Node* node = find("shaping")) {
    ParseItems(*node, "shaping", ShapingFields(), s_.shaping);
  }
  if (const YAML::Node* node = find("capture")) ParseCaptures(*node);
  if (const YAML::Node* node = find("listeners")) {
    ParseItems(*node, "listeners", ListenerFields(), s_.listeners);
  }
  if (const YAML::Node* node = find("floods")) {
    ParseItems(*node, "floods", FloodFields(), s_.floods);
  }
  if (const YAML::Node* node = find("sweep")) ParseSweep(*node);
  if (const YAML::Node* node = find("expect")) ParseExpect(*node);
  if (const YAML::Node* node = find("baseline")) ParseBaseline(*node);

  for (size_t i : literal_intervals_) {
    const SweepTarget accept{SweepTarget::Kind::kListener, i, "", "accept"};
    bool accept_swept = false;
    for (const SweepTarget& t : sweep_targets_) accept_swept = accept_swept || t == accept;
    if (!accept_swept) {
      Error(JoinPath(ItemPath("listeners", s_.listeners, i), "accept_interval"),
            "only used with accept: paced");
    }
  }
  CheckCombinations();
  return {std::move(s_), std::move(errors_)};
}

}  // namespace

absl::StatusOr<nanoseconds> ParseDuration(const std::string& text) {
  absl::string_view rest = absl::StripAsciiWhitespace(text);
  const absl::string_view usage = "expected a duration like 100ms, 2s, 1.5s or 250us";
  if (rest.empty()) return Invalid(absl::StrCat("empty duration; ", usage));
  if (rest.front() == '-') return Invalid(absl::StrCat("negative duration ", Quote(text)));
  size_t digits = 0;
  while (digits < rest.size() && (absl::ascii_isdigit(rest[digits]) || rest[digits] == '.')) {
    ++digits;
  }
  const absl::string_view number = rest.substr(0, digits);
  const absl::string_view unit = rest.substr(digits);
  const size_t dot = number.find('.');
  const bool well_formed =
      !number.empty() && number.front() != '.' && number.back() != '.' &&
      (dot == absl::string_view::npos || number.find('.', dot + 1) == absl::string_view::npos);
  double value = 0;
  if (!well_formed || !absl::SimpleAtod(number, &value)) {
    return Invalid(absl::StrCat(Quote(text), ": ", usage));
  }
  double scale = 0;
  if (unit.empty()) {
    if (value == 0) return nanoseconds(0);
    return Invalid(absl::StrCat(Quote(text), " needs a unit: ms, s or us"));
  } else if (unit == "s") {
    scale = 1e9;
  } else if (unit == "ms") {
    scale = 1e6;
  } else if (unit == "us") {
    scale = 1e3;
  } else {
    return Invalid(absl::StrCat(Quote(text), ": unknown unit ", Quote(unit), "; use ms, s or us"));
  }
  const double ns = value * scale;
  if (ns > kMaxDurationNs) return Invalid(absl::StrCat(Quote(text), " is too long"));
  return nanoseconds(std::llround(ns));
}

LoadResult LoadScenario(const std::string& yaml_text) {
  // yaml-cpp reports through exceptions; they stop here and become errors.
  try {
    const YAML::Node root = YAML::Load(yaml_text);
    return Loader().Load(root);
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) return {{}, {{"<yaml>", e.msg}}};
    return {{},
            {{"<yaml>", absl::StrCat("line ", e.mark.line + 1, ", column ", e.mark.column + 1, ": ",
                                     e.msg)}}};
  } catch (const std::exception& e) {
    return {{}, {{"<yaml>", e.what()}}};
  }
}

LoadResult LoadScenarioFile(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return {{},
            {{"<file>", absl::StrCat("cannot open ", Quote(path), ": ", std::strerror(errno))}}};
  }
  std::string text;
  std::array<char, size_t{64} * 1024> buffer;
  size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), file)) > 0) text.append(buffer.data(), n);
  const bool failed = std::ferror(file) != 0;
  const int saved_errno = errno;
  std::fclose(file);
  if (failed) {
    return {
        {},
        {{"<file>", absl::StrCat("cannot read ", Quote(path), ": ", std::strerror(saved_errno))}}};
  }
  return LoadScenario(text);
}

absl::StatusOr<std::vector<RunPlan>> ExpandSweep(const Scenario& scenario) {
  Scenario base = scenario;
  base.sweep.clear();  // each run is concrete
  std::vector<SweepTarget> targets;
  std::vector<size_t> sizes;
  for (const SweepAxis& axis : scenario.sweep) {
    absl::StatusOr<SweepTarget> target = ResolveSweepPath(scenario, axis.path);
    if (!target.ok()) {
      return Invalid(absl::StrCat("sweep.", axis.path, ": ", target.status().message()));
    }
    if (axis.values.empty()) return Invalid(absl::StrCat("sweep.", axis.path, ": no values"));
    targets.push_back(*std::move(target));
    sizes.push_back(axis.values.size());
  }
  if (CountRuns(scenario.sweep) > kMaxRuns) {
    return Invalid(absl::StrCat("sweep: more than ", kMaxRuns, " runs"));
  }
  std::vector<RunPlan> plans;
  absl::Status status;
  ForEachCombination(sizes, [&](const std::vector<size_t>& indices) {
    RunPlan plan{base, {}};
    for (size_t a = 0; a < indices.size(); ++a) {
      const SweepAxis& axis = scenario.sweep[a];
      const SweepValue& value = axis.values[indices[a]];
      absl::Status applied = ApplySweepValue(plan.scenario, targets[a], value);
      if (!applied.ok()) {
        status = Invalid(absl::StrCat("sweep.", axis.path, ": value ", DescribeValue(value), ": ",
                                      applied.message()));
        return false;
      }
      plan.params.emplace_back(axis.path, value);
    }
    std::vector<std::string> problems;
    for (const CrossError& e : CheckCrossFields(plan.scenario))
      problems.push_back(e.error.ToString());
    if (!problems.empty()) {
      std::vector<std::string> with;
      for (const auto& [path, value] : plan.params) {
        with.push_back(absl::StrCat(path, "=", DescribeValue(value)));
      }
      status = Invalid(absl::StrCat("run with ", absl::StrJoin(with, ", "), ": ",
                                    absl::StrJoin(problems, "; ")));
      return false;
    }
    plans.push_back(std::move(plan));
    return true;
  });
  if (!status.ok()) return status;
  return plans;
}

}  // namespace synq::controller
