#!/usr/bin/env bash
# Proves that every overlay under deploy/overlays renders with `kubectl kustomize` and that every
# object it renders is valid against the Kubernetes API types, strictly: each object becomes a
# typed TypeScript literal (kubernetes-types, to_typescript.js) compiled by `tsc --strict`, so an
# unknown field or a wrong type fails. Then proves the check can fail: each file in bad/ (an
# unknown field, a wrong type, an unknown kind) must be rejected with the error its comment names.
#
# Usage: check_manifests.sh SOURCE_DIR CACHE_DIR
#   KUBECTL: the kubectl to render with (default: kubectl on PATH; Debian 12's kubernetes-client
#   1.20 carries kustomize v2.0.3, kubectl 1.32 kustomize v5: the overlays work with both).
# npm packages (pinned in package.json/package-lock.json) are installed once into CACHE_DIR; with
# them there the check runs offline.
set -euo pipefail
src=$1
cache=$2
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
