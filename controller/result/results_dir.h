// A results folder that outlives the process that wrote it (`synq run --results-dir DIR`, a
// PersistentVolumeClaim in Kubernetes): every run gets DIR/<UTC time>-<scenario>/ and DIR/latest
// points at the newest run that passed, which `--baseline latest` compares the next run with.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace synq::controller::result {

// The name of the symlink in a results folder that points at the newest passing run.
inline constexpr char kLatestLink[] = "latest";

// Creates DIR (and parents) and a fresh DIR/<YYYYmmddTHHMMSSZ>-<scenario>/ for a run started at
// `now` (UTC); characters of `scenario` other than [A-Za-z0-9._-] become '-'. A folder of that
// name already there (two runs in one second) gets "-2", "-3"... Returns the folder's path.
absl::StatusOr<std::string> CreateRunDir(const std::string& results_dir,
                                         const std::string& scenario, absl::Time now);

// DIR/latest/result.json resolved to the run folder it names ("DIR/20261202T...-x/result.json"),
// so the result records which night it was compared with. "" when DIR/latest does not exist (the
// first run into DIR). An error, naming the path, when latest exists but its result.json does
// not (a run folder removed by hand): a silent first-night would hide a broken volume.
absl::StatusOr<std::string> LatestResultFile(const std::string& results_dir);

// Points DIR/latest at `run_dir` (a folder inside DIR) atomically: a relative symlink made under a
// temporary name and renamed over the old one, then the folder fsynced, so a reader sees the old
// run or the new one, never neither, and the link works wherever the volume is mounted.
absl::Status UpdateLatest(const std::string& results_dir, const std::string& run_dir);

}  // namespace synq::controller::result
