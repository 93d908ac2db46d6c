#!/usr/bin/env bash
# Issues the certificates of a synq fleet with openssl: one CA, one certificate per agent (its
# names and addresses as subject alternative names) and one for the controller.
#
#   deploy/certs/issue-certs.sh OUT_DIR [--days N] [--ca-dir DIR] [--controller NAME] AGENT...
#
# AGENT is NAME or NAME=SAN,SAN,...: "server=server.lab,10.0.0.7" gives agent "server" a
# certificate for DNS:server.lab and IP:10.0.0.7 (a bare NAME gets DNS:NAME). Writes:
#   OUT_DIR/ca.pem, ca.key                 the CA (keep ca.key offline; only ca.pem is shipped)
#   OUT_DIR/agents/NAME.pem, NAME.key      per agent: synq-agent --tls-cert/--tls-key, --tls-ca ca.pem
#   OUT_DIR/controller.pem, controller.key synq run/info --tls-cert/--tls-key, --tls-ca ca.pem
# An existing CA in OUT_DIR (or --ca-dir) is reused, so more agents can be added later.
# --days N (default 365) sets how long the agent and controller certificates last; a negative
# N issues one that is already expired (for tests), via a start date in the past.
set -euo pipefail

usage() { sed -n '2,16p' "$0" >&2; exit 2; }
[ $# -ge 1 ] || usage
out=$1; shift
days=365
ca_dir=""
controller=controller
agents=()
while [ $# -gt 0 ]; do
  case "$1" in
    --days) days=$2; shift 2 ;;
    --ca-dir) ca_dir=$2; shift 2 ;;
    --controller) controller=$2; shift 2 ;;
    -h|--help) usage ;;
    *) agents+=("$1"); shift ;;
  esac
done
ca_dir=${ca_dir:-$out}
mkdir -p "$out/agents" "$ca_dir"
umask 077

if [ ! -f "$ca_dir/ca.key" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=synq fleet CA $(date +%Y%m%d%H%M%S)-$$" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$ca_dir/ca.key" -out "$ca_dir/ca.pem" 2>/dev/null
fi
[ "$ca_dir" = "$out" ] || cp "$ca_dir/ca.pem" "$out/ca.pem"

# issue NAME SANS USAGE OUT_PREFIX: a P-256 key and a certificate signed by the CA.
issue() {
  local name=$1 sans=$2 usage=$3 prefix=$4
  local ext
  ext=$(mktemp)
  trap 'rm -f "$ext"' RETURN
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature"
    echo "extendedKeyUsage=$usage"
    [ -n "$sans" ] && echo "subjectAltName=$sans"
  } >"$ext"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" \
    -keyout "$prefix.key" -out "$prefix.csr" 2>/dev/null
  if [ "$days" -lt 0 ]; then
    # Already expired: valid for one day, ending |days| days ago. `openssl x509 -req` (3.0) has
    # no start date, so this one goes through `openssl ca` with a throwaway database.
    local db
    db=$(mktemp -d)
    touch "$db/index.txt"
    printf '[ca]\ndefault_ca=c\n[c]\ndatabase=%s/index.txt\nnew_certs_dir=%s\nserial=%s/serial\ndefault_md=sha256\npolicy=p\nunique_subject=no\n[p]\ncommonName=supplied\n' \
      "$db" "$db" "$db" >"$db/ca.cnf"
    openssl rand -hex 16 >"$db/serial"
    openssl ca -batch -config "$db/ca.cnf" -cert "$ca_dir/ca.pem" -keyfile "$ca_dir/ca.key" \
      -startdate "$(date -u -d "$((1 - days)) days ago" +%Y%m%d%H%M%SZ)" \
      -enddate "$(date -u -d "$((-days)) days ago" +%Y%m%d%H%M%SZ)" \
      -extfile "$ext" -notext -in "$prefix.csr" -out "$prefix.pem" 2>/dev/null
    rm -rf "$db"
  else
    openssl x509 -req -in "$prefix.csr" -CA "$ca_dir/ca.pem" -CAkey "$ca_dir/ca.key" \
      -CAcreateserial -CAserial "$ca_dir/ca.srl" -days "$days" -extfile "$ext" \
      -out "$prefix.pem" 2>/dev/null
  fi
  rm -f "$prefix.csr"
  chmod 600 "$prefix.key"
  chmod 644 "$prefix.pem"
}

# "a.lab,10.0.0.7,::1" -> "DNS:a.lab,IP:10.0.0.7,IP:::1"
sans_of() {
  local out="" item
  IFS=, read -ra items <<<"$1"
  for item in "${items[@]}"; do
    if [[ $item =~ ^[0-9.]+$ || $item == *:* ]]; then out+="${out:+,}IP:$item"; else out+="${out:+,}DNS:$item"; fi
  done
  echo "$out"
}

for a in "${agents[@]}"; do
  name=${a%%=*}
  list=$name
  [[ $a == *=* ]] && list=${a#*=}
  issue "$name" "$(sans_of "$list")" serverAuth "$out/agents/$name"
  echo "agent $name: $out/agents/$name.pem ($(sans_of "$list"))"
done
issue "$controller" "" clientAuth "$out/$controller"
chmod 644 "$ca_dir/ca.pem" "$out/ca.pem"
echo "controller $controller: $out/$controller.pem; CA: $out/ca.pem"
