#include "controller/scenario/fields.h"

#include <array>
#include <limits>
#include <vector>

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

auto IntIn(int64_t min, int64_t max) {
  return [min, max](const Scalar& s) { return ParseInt(s, min, max); };
}
auto DurationOf(bool allow_zero) {
  return [allow_zero](const Scalar& s) { return ParseDurationAtLeast(s, allow_zero); };
}

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
                            absl::StatusOr<double> rate = ParseNumber(s, 0, 1e9);
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
      {"rate",
       Field(
           &FloodDef::rate,
           [](const Scalar& s) { return ParseNumber(s, 0, std::numeric_limits<double>::max()); },
           true)},
      {"connect_timeout", Field(&FloodDef::connect_timeout, DurationOf(false), true)},
      {"start_after", Field(&FloodDef::start_after, DurationOf(true), true)},
      {"hold", Field(&FloodDef::hold, DurationOf(true), true)},
      {"payload", Field(
                      &FloodDef::payload,
                      [](const Scalar& s) -> absl::StatusOr<std::string> { return s.text; }, true)},
  };
  return *table;
}

const FieldTable<ShapingDef>& ShapingFields() {
  static const auto* table = new FieldTable<ShapingDef>{
      {"to", Field(&ShapingDef::to, ParseNonEmpty, false)},
      {"delay", Field(&ShapingDef::delay, DurationOf(true), true)},
      {"jitter", Field(&ShapingDef::jitter, DurationOf(true), true)},
      {"loss", Field(
                   &ShapingDef::loss_percent,
                   [](const Scalar& s) { return ParseNumber(s, 0, 100); }, true)},
      {"rate", Field(&ShapingDef::rate_bits_per_second, ParseRate, true)},
      {"backend", Field(&ShapingDef::backend, ParseShapingBackend, false)},
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

namespace {

constexpr int64_t kIntMax = std::numeric_limits<int32_t>::max();
// clang-format off
constexpr std::array<SettingRange, 7> kSettings = {{
    {"net.core.somaxconn", 0, kIntMax},
    {"net.ipv4.tcp_abort_on_overflow", 0, 1},
    {"net.ipv4.tcp_synack_retries", 0, 255},
    {"net.ipv4.tcp_syn_retries", 1, 127},
    {"net.ipv4.tcp_syncookies", 0, 2},
    {"net.ipv4.tcp_max_syn_backlog", 1, kIntMax},
    {"net.ipv4.tcp_syn_linear_timeouts", 0, 255},
}};
// clang-format on

}  // namespace

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

absl::StatusOr<nanoseconds> ParseSampleInterval(const Scalar& s) {
  return ParseDurationAtLeast(s, /*allow_zero=*/false);
}

}  // namespace synq::controller::scenario
