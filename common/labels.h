// Agent labels: `synq-agent --label KEY=VALUE` (HostInfo.labels) and a host group's `select:`,
// which keeps the members whose labels match. The syntax is Kubernetes' label syntax, so a
// node's name or labels pass through unchanged (deploy/: --label node=$(NODE_NAME)).
#pragma once

#include <map>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace synq::common {

using Labels = std::map<std::string, std::string>;

// A key: an optional prefix (a DNS subdomain of at most 253 characters) and '/', then a name of
// 1-63 characters of [A-Za-z0-9-_.] that starts and ends alphanumeric. InvalidArgument saying
// what is wrong.
absl::Status CheckLabelKey(absl::string_view key);
// A value: 0-63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric when not empty.
absl::Status CheckLabelValue(absl::string_view value);
// "KEY=VALUE", both checked.
absl::StatusOr<std::pair<std::string, std::string>> ParseLabel(absl::string_view text);

// Every key of `select` is in `labels` with the same value.
bool LabelsMatch(const Labels& labels, const Labels& select);
// "k1=v1,k2=v2" (sorted by key); "" for none.
std::string FormatLabels(const Labels& labels);

}  // namespace synq::common
