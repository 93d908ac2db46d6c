#include "controller/scenario/fields.h"

#include <array>
#include <limits>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/net_address.h"

namespace synq::controller::scenario {
namespace {

using std::chrono::nanoseconds;

// A field stored in member `member` of T, checked by `parse` (Scalar -> StatusOr<M>).
template <typename T, typename M, typename P>
FieldSpec<T> Field(M T::*member, P parse, bool sweepable) {
  return {[parse](const Scalar& s) -> absl::StatusOr<FieldValue> {
            absl::StatusOr<M> value = parse(s);
            if (!value.ok()) return value.status();
            return FieldValue(std::in_place_type<M>, *std::move(value));
          },
          [member](const FieldValue& value, T& def) -> absl::Status {
            const M* typed = std::get_if<M>(&value);
            if (typed == nullptr) return absl::InternalError("a value of another field's type");
            def.*member = *typed;
            return absl::OkStatus();
          },
          sweepable};
}

// A field checked by `parse` (Scalar -> StatusOr<M>) and stored by `store(M, T&)`, for fields
// that set more than one member (a rate that also picks the profile kind).
template <typename T, typename M, typename P, typename S>
FieldSpec<T> Stored(P parse, S store, bool sweepable) {
  return {[parse](const Scalar& s) -> absl::StatusOr<FieldValue> {
            absl::StatusOr<M> value = parse(s);
            if (!value.ok()) return value.status();
            return FieldValue(std::in_place_type<M>, *std::move(value));
          },
          [store](const FieldValue& value, T& def) -> absl::Status {
            const M* typed = std::get_if<M>(&value);
            if (typed == nullptr) return absl::InternalError("a value of another field's type");
            store(*typed, def);
            return absl::OkStatus();
          },
          sweepable};
}

auto IntIn(int64_t min, int64_t max) {
  return [min, max](const Scalar& s) { return ParseInt(s, min, max); };
}
auto DurationOf(bool allow_zero) {
  return [allow_zero](const Scalar& s) { return ParseDurationAtLeast(s, allow_zero); };
}
auto DurationIn(nanoseconds min, nanoseconds max) {
  return [min, max](const Scalar& s) { return ParseDurationIn(s, min, max); };
}
constexpr nanoseconds kOneNs{1};

absl::StatusOr<common::SharedText> ParsePayload(const Scalar& s) {
  if (s.text.size() > common::kMaxPayloadBytes) {
    return Invalid(absl::StrCat("at most ", common::kMaxPayloadBytes, " bytes, got ",
                                s.text.size()));
  }
  return common::SharedText(s.text);
}

}  // namespace

absl::StatusOr<double> ParseFloodRate(const Scalar& s) {
  return ParseNumber(s, 0, common::kMaxFloodRate);
}

namespace {

absl::StatusOr<double> RateValue(const Scalar& s) { return ParseFloodRate(s); }

}  // namespace

const FieldTable<ListenerDef>& ListenerFields() {
  static const auto* table = new FieldTable<ListenerDef>{
      {"port", Field(&ListenerDef::port, IntIn(0, 65535), true)},
      {"backlog",
       Field(&ListenerDef::backlog,
             IntIn(std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()),
             true)},
      {"accept", Field(&ListenerDef::accept, ParseAcceptMode, true)},
      {"accept_interval", Field(&ListenerDef::accept_interval, DurationOf(false), true)},
      {"accept_rate", Field(
                          &ListenerDef::accept_rate,
                          [](const Scalar& s) -> absl::StatusOr<double> {
                            absl::StatusOr<double> rate =
                                ParseNumber(s, 0, common::kMaxAcceptRate);
                            if (rate.ok() && *rate == 0) {
                              return Invalid("must be greater than 0 (accepts per second)");
                            }
                            return rate;
                          },
                          true)},
      {"close_on_accept", Field(&ListenerDef::close_on_accept, ParseBool, true)},
      {"address", Field(
                      &ListenerDef::address,
                      [](const Scalar& s) -> absl::StatusOr<std::string> {
                        absl::StatusOr<common::SocketAddress> address =
                            common::ParseHostAddress(s.text, 0);
                        if (!address.ok()) return address.status();
                        return s.text;
                      },
                      true)},
  };
  return *table;
}

const FieldTable<FloodDef>& FloodFields() {
  static const auto* table = new FieldTable<FloodDef>{
      {"target", Field(&FloodDef::target, ParseNonEmpty, true)},
      {"connections", Field(&FloodDef::connections, IntIn(1, kMaxConnections), true)},
      {"concurrency", Field(&FloodDef::concurrency, IntIn(1, kMaxConcurrency), true)},
      {"rate", Stored<FloodDef, double>(
                   RateValue,
                   [](double v, FloodDef& f) {
                     f.rate = v;
                     f.rate_kind = RateKind::kConstant;
                   },
                   true)},
      // The parts of a ramp or of steps, for sweeps ("floods.f1.rate.to"); a file writes them
      // inside `rate: {...}` (controller/scenario/flood_nodes.h).
      {"rate.from", Stored<FloodDef, double>(
                        RateValue,
                        [](double v, FloodDef& f) {
                          f.ramp_from = v;
                          f.rate_kind = RateKind::kRamp;
                        },
                        true)},
      {"rate.to", Stored<FloodDef, double>(
                      RateValue,
                      [](double v, FloodDef& f) {
                        f.ramp_to = v;
                        f.rate_kind = RateKind::kRamp;
                      },
                      true)},
      {"rate.over", Stored<FloodDef, nanoseconds>(
                        DurationOf(false),
                        [](nanoseconds v, FloodDef& f) {
                          f.ramp_over = v;
                          f.rate_kind = RateKind::kRamp;
                        },
                        true)},
      {"rate.each", Stored<FloodDef, nanoseconds>(
                        DurationOf(false),
                        [](nanoseconds v, FloodDef& f) {
                          f.steps_each = v;
                          f.rate_kind = RateKind::kSteps;
                        },
                        true)},
      {"duration", Field(&FloodDef::duration, DurationOf(false), true)},
      {"lifetime",
       Field(&FloodDef::lifetime, DurationIn(nanoseconds(0), common::kMaxConnectTimeout), true)},
      {"close", Field(&FloodDef::close, ParseCloseMode, true)},
      {"threads", Field(&FloodDef::threads, IntIn(1, kMaxThreads), true)},
      // `sources: N` (the first N addresses of the host); a list is read by flood_nodes.h.
      {"sources", Stored<FloodDef, int64_t>(
                      IntIn(1, kMaxSourceCount),
                      [](int64_t n, FloodDef& f) {
                        f.source_count = n;
                        f.sources.clear();
                      },
                      true)},
      {"connect_timeout",
       Field(&FloodDef::connect_timeout, DurationIn(kOneNs, common::kMaxConnectTimeout), true)},
      {"start_after", Field(&FloodDef::start_after, DurationOf(true), true)},
      {"hold", Field(&FloodDef::hold, DurationOf(true), true)},
      {"payload", Field(&FloodDef::payload, ParsePayload, true)},
  };
  return *table;
}

const FieldTable<ShapingDef>& ShapingFields() {
  static const auto* table = new FieldTable<ShapingDef>{
      {"to", Field(&ShapingDef::to, ParseNonEmpty, false)},
      {"delay",
       Field(&ShapingDef::delay, DurationIn(nanoseconds(0), common::kMaxShapingDelay), true)},
      {"jitter",
       Field(&ShapingDef::jitter, DurationIn(nanoseconds(0), common::kMaxShapingDelay), true)},
      {"loss", Field(
                   &ShapingDef::loss_percent,
                   [](const Scalar& s) { return ParseNumber(s, 0, 100); }, true)},
      {"rate", Field(&ShapingDef::rate_bits_per_second, ParseRate, true)},
      {"backend", Field(&ShapingDef::backend, ParseShapingBackend, false)},
  };
  return *table;
}

const FieldTable<ObserveDef>& ObserveFields() {
  static const auto* table = new FieldTable<ObserveDef>{
      {"port", Field(&ObserveDef::port, IntIn(1, 65535), false)},
      {"address", Field(
                      &ObserveDef::address,
                      [](const Scalar& s) -> absl::StatusOr<std::string> {
                        absl::StatusOr<common::SocketAddress> address =
                            common::ParseHostAddress(s.text, 0);
                        if (!address.ok()) return address.status();
                        return s.text;
                      },
                      false)},
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
template std::string FieldNames(const FieldTable<ListenerDef>&, bool);
template std::string FieldNames(const FieldTable<FloodDef>&, bool);
template std::string FieldNames(const FieldTable<ShapingDef>&, bool);
template std::string FieldNames(const FieldTable<ObserveDef>&, bool);

absl::Status CheckSettingKey(absl::string_view key) {
  // Only the shape: which keys a host allows, and their ranges, its agent says (HostInfo).
  bool ok = !key.empty() && key.front() != '.' && key.back() != '.' &&
            key.find("..") == absl::string_view::npos && key.size() <= 128;
  for (char c : key) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '_' && c != '.') ok = false;
  }
  if (ok) return absl::OkStatus();
  return Invalid(
      "not a sysctl key (lowercase letters, digits, '_' and '.', like net.core.somaxconn)");
}

absl::StatusOr<int64_t> ParseSetting(absl::string_view key, const Scalar& s) {
  if (absl::Status shape = CheckSettingKey(key); !shape.ok()) return shape;
  return ParseInt(s, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max());
}

absl::StatusOr<nanoseconds> ParseSampleInterval(const Scalar& s) {
  return ParseDurationIn(s, common::kMinSampleInterval, common::kMaxDuration);
}

}  // namespace synq::controller::scenario
