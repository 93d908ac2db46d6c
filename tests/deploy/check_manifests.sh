#!/usr/bin/env bash
# Proves that every overlay under deploy/overlays renders with `kubectl kustomize` and that every
# object it renders is valid against the Kubernetes API types, strictly: each object becomes a
# typed TypeScript literal (kubernetes-types, to_typescript.js) compiled by `tsc --strict`, so an
# unknown field or a wrong type fails. Then proves the check can fail: each file in bad/ (an
# unknown field, a wrong type, an unknown kind) must be rejected with the error its comment names.
#
# Also validates each overlay's scenario.yaml with the real `synq validate` (third argument).
#
# Usage: check_manifests.sh SOURCE_DIR CACHE_DIR [SYNQ_BINARY]
#   KUBECTL: the kubectl to render with (default: kubectl on PATH; Debian 12's kubernetes-client
#   1.20 carries kustomize v2.0.3, kubectl 1.32 kustomize v5: the overlays work with both).
# npm packages (pinned in package.json/package-lock.json) are installed once into CACHE_DIR; with
# them there the check runs offline.
set -euo pipefail
src=$1
cache=$2
synq=${3:-}
here="$src/tests/deploy"
kubectl=${KUBECTL:-kubectl}
command -v "$kubectl" >/dev/null || { echo "SKIP: no kubectl (install kubernetes-client)"; exit 77; }
command -v node >/dev/null && command -v npm >/dev/null ||
  { echo "SKIP: needs nodejs and npm"; exit 77; }

mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
if ! cmp -s "$here/package-lock.json" "$cache/package-lock.json" || [ ! -d "$cache/node_modules" ]; then
  cp "$here/package.json" "$here/package-lock.json" "$cache/"
  (cd "$cache" && npm ci --no-audit --no-fund --cache "$cache/npm-cache" --prefer-offline >/dev/null)
fi
export NODE_PATH="$cache/node_modules"
tsc="$cache/node_modules/.bin/tsc"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ln -s "$cache/node_modules" "$work/node_modules"
tsc_flags=(--strict --noEmit --skipLibCheck false --target es2020 --module commonjs
  --moduleResolution node)

echo "kubectl: $("$kubectl" version --client 2>/dev/null | head -1)"
overlays=0
for dir in "$src"/deploy/overlays/*/; do
  name=$(basename "$dir")
  "$kubectl" kustomize "$dir" >"$work/$name.yaml" 2>"$work/$name.err" ||
    { cat "$work/$name.err"; echo "FAIL: kubectl kustomize $dir"; exit 1; }
  mkdir -p "$work/good"
  node "$here/to_typescript.js" "$work/$name.yaml" "$work/good" "$name"
  overlays=$((overlays + 1))
done
[ "$overlays" -ge 2 ] || { echo "FAIL: expected the capacity-job and nightly-cronjob overlays"; exit 1; }
if ! (cd "$work" && "$tsc" "${tsc_flags[@]}" good/*.ts); then
  echo "FAIL: rendered manifests do not type-check (errors above)"
  exit 1
fi
echo "ok: $(ls "$work/good" | wc -l) objects from $overlays overlays type-check"

# Every image is pinned to this release (project(synq VERSION ...)), never a moving tag.
version=$(sed -n 's/^project(synq VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
images=$(cat "$work"/*.yaml | sed -n 's/^ *image: *//p' | sort -u)
for i in $images; do
  [ "${i##*:}" = "$version" ] || { echo "FAIL: image $i is not pinned to synq $version"; exit 1; }
done
echo "ok: images pinned to $version: $images"

# Every Localhost seccomp profile the manifests name is shipped in deploy/seccomp and lets the
# io_uring calls through (runtimes' defaults refuse io_uring_setup: the reason the profile exists).
profiles=$(cat "$work"/*.yaml | sed -n 's/^ *localhostProfile: *//p' | sort -u)
[ -n "$profiles" ] || { echo "FAIL: no Localhost seccomp profile referenced"; exit 1; }
for p in $profiles; do
  f="$src/deploy/seccomp/$(basename "$p")"
  [ -f "$f" ] || { echo "FAIL: $p is referenced but $f does not exist"; exit 1; }
  node -e '
    const p = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const allowed = (n) => p.syscalls.some((r) => r.names.includes(n) && r.action === "SCMP_ACT_ALLOW") ||
      (p.defaultAction === "SCMP_ACT_ALLOW" && !p.syscalls.some((r) => r.names.includes(n)));
    const no = ["io_uring_setup", "io_uring_enter", "io_uring_register"].filter((n) => !allowed(n));
    if (no.length) { console.error(`${process.argv[1]}: does not allow ${no.join(", ")}`); process.exit(1); }
  ' "$f" || exit 1
  echo "ok: seccomp profile $p ($f) allows io_uring"
done

# The scenarios the Jobs run, as they are (the discovered client group included); only the server
# node's placeholder address gets a test address.
if [ -n "$synq" ]; then
  for s in "$src"/deploy/overlays/*/scenario.yaml; do
    sed -E 's|SERVER_NODE_IP|198.18.0.2|' "$s" >"$work/scenario.yaml"
    "$synq" validate "$work/scenario.yaml" >/dev/null || { echo "FAIL: synq validate $s"; exit 1; }
    echo "ok: $s validates"
  done
fi

# Each bad file states on its first line the tsc error text it must produce.
for bad in "$here"/bad/*.yaml; do
  b=$(basename "$bad" .yaml)
  expect=$(sed -n '1s/^# expect: //p' "$bad")
  mkdir -p "$work/bad-$b"
  node "$here/to_typescript.js" "$bad" "$work/bad-$b" "$b" >/dev/null
  if out=$(cd "$work" && "$tsc" "${tsc_flags[@]}" "bad-$b"/*.ts 2>&1); then
    echo "FAIL: $b was accepted; the check cannot see this mistake"
    exit 1
  fi
  grep -qF -- "$expect" <<<"$out" || { echo "$out"; echo "FAIL: $b rejected, but not with: $expect"; exit 1; }
  echo "ok: $b rejected ($expect)"
done
