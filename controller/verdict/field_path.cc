#include "controller/verdict/field_path.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace synq::controller::verdict {
namespace {

namespace pb = ::google::protobuf;
using result::v1::Run;

constexpr absl::string_view kParamsPrefix = "params.";

bool IsNumber(const pb::FieldDescriptor* f) {
  switch (f->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_INT32:
    case pb::FieldDescriptor::CPPTYPE_INT64:
    case pb::FieldDescriptor::CPPTYPE_UINT32:
    case pb::FieldDescriptor::CPPTYPE_UINT64:
    case pb::FieldDescriptor::CPPTYPE_DOUBLE:
    case pb::FieldDescriptor::CPPTYPE_FLOAT:
    case pb::FieldDescriptor::CPPTYPE_BOOL:
      return true;
    default:
      return false;
  }
}

bool HoldsMessages(const pb::FieldDescriptor* map) {
  return map->message_type()->map_value()->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE;
}

// A field an expectation can walk through or read: a number, a message, or a map of either.
bool Leads(const pb::FieldDescriptor* f) {
  if (f->is_map()) {
    const pb::FieldDescriptor* value = f->message_type()->map_value();
    return IsNumber(value) || value->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE;
  }
  if (f->is_repeated()) return false;
  return IsNumber(f) || f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE;
}

// "Flood" -> "flood", "ListenerSample" -> "listener sample".
std::string Words(absl::string_view camel) {
  std::string out;
  for (char c : camel) {
    if (std::isupper(static_cast<unsigned char>(c)) && !out.empty()) out += ' ';
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string Article(const std::string& noun) {
  return absl::StrCat(absl::StrContains("aeiou", noun.substr(0, 1)) ? "an " : "a ", noun);
}

std::string Quote(absl::string_view s) { return absl::StrCat("'", s, "'"); }

// The fields of `d` that lead to numbers, for "no field" errors.
std::string FieldNames(const pb::Descriptor* d) {
  std::vector<std::string> names;
  for (int i = 0; i < d->field_count(); ++i) {
    if (Leads(d->field(i))) names.push_back(d->field(i)->name());
  }
  return absl::StrJoin(names, ", ");
}

// The numbers inside `d`, one level down: "attempted", "errors.<key>", "fates.<field>".
std::string NumbersIn(const pb::Descriptor* d) {
  std::vector<std::string> names;
  for (int i = 0; i < d->field_count(); ++i) {
    const pb::FieldDescriptor* f = d->field(i);
    if (!Leads(f)) continue;
    if (f->is_map()) {
      names.push_back(absl::StrCat(f->name(), HoldsMessages(f) ? ".<name>.<field>" : ".<key>"));
    } else if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      names.push_back(absl::StrCat(f->name(), ".<field>"));
    } else {
      names.push_back(f->name());
    }
  }
  return absl::StrJoin(names, ", ");
}

// Maps whose absent entries mean "none": counters that did not move, errnos that did not occur.
bool ZeroWhenAbsent(const pb::FieldDescriptor* map) {
  static const auto* const kMaps = new std::vector<std::string>{
      "synq.result.v1.Host.counters", "synq.result.v1.Host.drop_events",
      "synq.result.v1.Flood.errors", "synq.result.v1.Histogram.buckets"};
  for (const std::string& name : *kMaps) {
    if (map->full_name() == name) return true;
  }
  return false;
}

// The scenario's names for the keys of a map of the run (floods, listeners, hosts); nullopt for
// maps whose keys the scenario does not name.
std::optional<std::vector<std::string>> ScenarioNames(const Scenario& s,
                                                      const pb::FieldDescriptor* map) {
  const pb::Descriptor* run = Run::descriptor();
  std::vector<std::string> names;
  if (map == run->FindFieldByName("floods")) {
    for (const FloodDef& f : s.floods) names.push_back(f.name);
  } else if (map == run->FindFieldByName("listeners")) {
    for (const ListenerDef& l : s.listeners) names.push_back(l.name);
    for (const ObserveDef& o : s.observes) names.push_back(o.name);
  } else if (map == run->FindFieldByName("hosts")) {
    for (const HostSpec& h : s.hosts) names.push_back(h.name);
  } else {
    return std::nullopt;
  }
  return names;
}

double ReadNumber(const pb::Message& m, const pb::FieldDescriptor* f) {
  const pb::Reflection* r = m.GetReflection();
  switch (f->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_INT32:
      return r->GetInt32(m, f);
    case pb::FieldDescriptor::CPPTYPE_INT64:
      return static_cast<double>(r->GetInt64(m, f));
    case pb::FieldDescriptor::CPPTYPE_UINT32:
      return r->GetUInt32(m, f);
    case pb::FieldDescriptor::CPPTYPE_UINT64:
      return static_cast<double>(r->GetUInt64(m, f));
    case pb::FieldDescriptor::CPPTYPE_DOUBLE:
      return r->GetDouble(m, f);
    case pb::FieldDescriptor::CPPTYPE_FLOAT:
      return r->GetFloat(m, f);
    case pb::FieldDescriptor::CPPTYPE_BOOL:
      return r->GetBool(m, f) ? 1 : 0;
    default:
      return 0;
  }
}

// The entry of map field `map` in `m` whose key prints as `key`; null when absent.
const pb::Message* FindEntry(const pb::Message& m, const pb::FieldDescriptor* map,
                             const std::string& key) {
  const pb::Reflection* r = m.GetReflection();
  const pb::FieldDescriptor* key_field = map->message_type()->map_key();
  for (int i = 0; i < r->FieldSize(m, map); ++i) {
    const pb::Message& entry = r->GetRepeatedMessage(m, map, i);
    const pb::Reflection* er = entry.GetReflection();
    std::string text;
    switch (key_field->cpp_type()) {
      case pb::FieldDescriptor::CPPTYPE_STRING:
        text = er->GetString(entry, key_field);
        break;
      case pb::FieldDescriptor::CPPTYPE_UINT32:
        text = absl::StrCat(er->GetUInt32(entry, key_field));
        break;
      case pb::FieldDescriptor::CPPTYPE_INT32:
        text = absl::StrCat(er->GetInt32(entry, key_field));
        break;
      case pb::FieldDescriptor::CPPTYPE_UINT64:
        text = absl::StrCat(er->GetUInt64(entry, key_field));
        break;
      case pb::FieldDescriptor::CPPTYPE_INT64:
        text = absl::StrCat(er->GetInt64(entry, key_field));
        break;
      default:
        continue;
    }
    if (text == key) return &entry;
  }
  return nullptr;
}

bool IsIntegerKey(const pb::FieldDescriptor* key_field) {
  return key_field->cpp_type() != pb::FieldDescriptor::CPPTYPE_STRING;
}

// Keys the scenario does not name (counters, sysctls, errnos): nstat- and sysctl-like words.
bool IsKeyWord(absl::string_view key) {
  if (key.empty()) return false;
  for (char c : key) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') {
      return false;
    }
  }
  return true;
}

// "not_observed", with the run's reason for `path` when it gave one.
absl::Status NotObserved(const Run& run, const std::string& path, absl::string_view why = "") {
  std::string reason(why);
  if (reason.empty()) {
    for (const std::string& entry : run.not_observed()) {
      if (absl::StartsWith(entry, absl::StrCat(path, ":"))) {
        reason = std::string(absl::StripAsciiWhitespace(entry.substr(path.size() + 1)));
        break;
      }
    }
  }
  return absl::FailedPreconditionError(
      absl::StrCat(path, ": not_observed", reason.empty() ? "" : absl::StrCat(" (", reason, ")")));
}

// The string field `name` of `m` when present and non-empty.
std::string StringField(const pb::Message& m, const std::string& name) {
  const pb::FieldDescriptor* f = m.GetDescriptor()->FindFieldByName(name);
  if (f == nullptr || f->cpp_type() != pb::FieldDescriptor::CPPTYPE_STRING || f->is_repeated()) {
    return "";
  }
  return m.GetReflection()->GetString(m, f);
}

absl::StatusOr<double> WalkParams(const Scenario* scenario, const Run* run,
                                  const std::string& path) {
  const std::string axis_path = path.substr(kParamsPrefix.size());
  if (scenario != nullptr) {
    std::vector<std::string> axes;
    for (const SweepAxis& axis : scenario->sweep) {
      axes.push_back(axis.path);
      if (axis.path != axis_path) continue;
      for (const SweepValue& value : axis.values) {
        if (value.kind() == SweepValue::Kind::kString) {
          return absl::InvalidArgumentError(absl::StrCat(path, ": the sweep gives it the text ",
                                                         Quote(value.Text()), ", not a number"));
        }
      }
      return 0.0;
    }
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": no sweep axis ", Quote(axis_path),
                     axes.empty() ? " (the scenario has no sweep)"
                                  : absl::StrCat(" (sweep: ", absl::StrJoin(axes, ", "), ")")));
  }
  auto it = run->params().find(axis_path);
  if (it == run->params().end()) return NotObserved(*run, path, "not among this run's params");
  const google::protobuf::Value& value = it->second;
  switch (value.kind_case()) {
    case google::protobuf::Value::kNumberValue:
      return value.number_value();
    case google::protobuf::Value::kBoolValue:
      return value.bool_value() ? 1.0 : 0.0;
    case google::protobuf::Value::kStringValue:
      return absl::FailedPreconditionError(
          absl::StrCat(path, ": the text ", Quote(value.string_value()), ", not a number"));
    default:
      return absl::FailedPreconditionError(absl::StrCat(path, ": not a number in this run"));
  }
}

// One walk for both jobs: with `run` null, checks `path` against the descriptors and the
// scenario's names; otherwise reads it from `run`.
absl::StatusOr<double> Walk(const Scenario* scenario, const Run* run, const std::string& path) {
  if (absl::StartsWith(path, kParamsPrefix)) return WalkParams(scenario, run, path);
  auto invalid = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", why));
  };
  const std::vector<std::string> segments = absl::StrSplit(path, '.');
  for (const std::string& segment : segments) {
    if (segment.empty()) return invalid("empty path segment");
  }
  const pb::Descriptor* d = Run::descriptor();
  const pb::Message* m = run;
  std::string what = "a run";  // the current message, for errors
  std::string walked;          // the path up to the current message
  size_t i = 0;
  while (true) {
    const std::string& name = segments[i];
    const pb::FieldDescriptor* f = d->FindFieldByName(name);
    const std::string here = walked.empty() ? name : absl::StrCat(walked, ".", name);
    const bool last = i + 1 == segments.size();
    if (f == nullptr) {
      return invalid(
          absl::StrCat("no field ", Quote(name), " in ", what, " (fields: ", FieldNames(d), ")"));
    }
    if (f->is_map() && Leads(f)) {
      const pb::FieldDescriptor* key_field = f->message_type()->map_key();
      const pb::FieldDescriptor* value_field = f->message_type()->map_value();
      const bool messages = HoldsMessages(f);
      if (last) {
        return invalid(absl::StrCat(here, " is a map, not a number; name an entry: ", here,
                                    messages ? ".<name>.<field>" : ".<key>"));
      }
      // Keys of number maps may hold dots (sysctls): they take the rest of the path.
      const std::string key =
          messages ? segments[i + 1] : absl::StrJoin(segments.begin() + i + 1, segments.end(), ".");
      const std::string entry_path = absl::StrCat(here, ".", key);
      const std::string noun =
          messages ? Words(value_field->message_type()->name()) : std::string("key");
      if (run == nullptr) {
        if (messages && scenario != nullptr) {
          std::optional<std::vector<std::string>> names = ScenarioNames(*scenario, f);
          if (names && std::find(names->begin(), names->end(), key) == names->end()) {
            return invalid(absl::StrCat("no ", noun, " named ", Quote(key), " (", name, ": ",
                                        names->empty() ? "none" : absl::StrJoin(*names, ", "),
                                        ")"));
          }
        }
        uint64_t unused = 0;
        if (IsIntegerKey(key_field) ? !absl::SimpleAtoi(key, &unused) : !IsKeyWord(key)) {
          return invalid(absl::StrCat(Quote(key), " is not a key of ", here));
        }
        if (!messages) return 0.0;
      } else {
        const pb::Message* entry = FindEntry(*m, f, key);
        if (entry == nullptr) {
          if (messages) {
            return absl::NotFoundError(
                absl::StrCat(path, ": no ", noun, " ", Quote(key), " in this run's result"));
          }
          if (!ZeroWhenAbsent(f)) return NotObserved(*run, path, "not reported in this run");
          const std::string unavailable = StringField(*m, absl::StrCat(name, "_unavailable"));
          if (!unavailable.empty()) return NotObserved(*run, path, unavailable);
          return 0.0;
        }
        if (!messages) return ReadNumber(*entry, value_field);
        m = &entry->GetReflection()->GetMessage(*entry, value_field);
        const std::string failed = StringField(*m, "error");
        if (!failed.empty()) {
          return NotObserved(*run, path, absl::StrCat(entry_path, " failed: ", failed));
        }
      }
      d = value_field->message_type();
      what = Article(noun);
      walked = entry_path;
      i += 2;
      if (i == segments.size()) {
        return invalid(
            absl::StrCat(walked, " is ", what, ", not a number; numbers in it: ", NumbersIn(d)));
      }
      continue;
    }
    if (f->is_repeated()) {
      return invalid(absl::StrCat(Quote(name), " in ", what, " is a list, not a number"));
    }
    if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      if (last) {
        return invalid(
            absl::StrCat(here, " is ", Article(Words(f->message_type()->name())),
                         ", not a number; numbers in it: ", NumbersIn(f->message_type())));
      }
      if (run != nullptr) {
        if (!m->GetReflection()->HasField(*m, f)) return NotObserved(*run, path);
        m = &m->GetReflection()->GetMessage(*m, f);
      }
      d = f->message_type();
      what = here;
      walked = here;
      ++i;
      continue;
    }
    if (!IsNumber(f)) {
      return invalid(
          absl::StrCat(Quote(name), " in ", what, " is ",
                       f->cpp_type() == pb::FieldDescriptor::CPPTYPE_ENUM ? "a name" : "text",
                       ", not a number"));
    }
    if (!last) {
      return invalid(absl::StrCat(here, " is a number; it has no field ", Quote(segments[i + 1])));
    }
    if (run == nullptr) return 0.0;
    if (f->has_presence() && !m->GetReflection()->HasField(*m, f)) return NotObserved(*run, path);
    return ReadNumber(*m, f);
  }
}

}  // namespace

absl::Status CheckFieldPath(const Scenario& scenario, const std::string& path) {
  return Walk(&scenario, nullptr, path).status();
}

absl::StatusOr<double> ReadFieldPath(const result::v1::Run& run, const std::string& path) {
  return Walk(nullptr, &run, path);
}

}  // namespace synq::controller::verdict
