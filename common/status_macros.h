// Early-return helpers for absl::Status / absl::StatusOr (Debian's Abseil 20220623 has none).
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define SYNQ_CONCAT_INNER_(a, b) a##b
#define SYNQ_CONCAT_(a, b) SYNQ_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define RETURN_IF_ERROR(expr)                    \
  do {                                           \
    ::absl::Status synq_status_ = (expr);        \
    if (!synq_status_.ok()) return synq_status_; \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, F())`: assigns the value of a StatusOr or returns its status.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(SYNQ_CONCAT_(synq_statusor_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                           \
  if (!statusor.ok()) return statusor.status();     \
  lhs = std::move(statusor).value()
