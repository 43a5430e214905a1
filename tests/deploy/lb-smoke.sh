#!/usr/bin/env bash
# Runs deploy/haproxy/haproxy.cfg for real, in front of two `nomos-issuer serve`
# replicas on a throwaway Postgres, all on loopback: what compose.yaml would do,
# without Docker. Only the listen addresses and the server lists of both
# backends (each replica's public and operator port) are rewritten (Docker's DNS
# is not there); every rule is the checked-in one.
#
#   bash tests/deploy/lb-smoke.sh        # needs haproxy and the Postgres server binaries
#
# HAPROXY (default: haproxy) and BIN (default: target/debug/nomos-issuer, built if
# missing) can be overridden. tests/deploy-check runs it only when haproxy and
# the Postgres server binaries are installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
step() { printf '[lb-smoke] %s\n' "$*"; }
apt_install() { step "missing $*: install it and re-run"; exit 1; }
HAPROXY=${HAPROXY:-haproxy}
BIN=${BIN:-${CARGO_TARGET_DIR:-$PWD/target}/debug/nomos-issuer}
command -v "$HAPROXY" >/dev/null || { step "haproxy is not installed"; exit 1; }
[ -x "$BIN" ] || cargo build --quiet --bin nomos-issuer

work=$(mktemp -d /tmp/nomos-lb-smoke.XXXXXX)
pids=()
stop_all() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
# shellcheck source=tests/throwaway-postgres.sh
source tests/throwaway-postgres.sh
trap 'stop_all; stop_throwaway_postgres' EXIT

failures=0
expect() { # expect WHAT WANT GOT
  if [ "$2" = "$3" ]; then step "ok    $1: $3"; else step "FAIL  $1: want $2, got $3"; failures=$((failures + 1)); fi
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
codes() { # codes N CURL-ARGS...: N requests, their status codes on one line
  local n=$1 out=""
  shift
  for _ in $(seq 1 "$n"); do out+="$(code "$@") "; done
  printf '%s' "${out% }"
}
repeat() { local n=$1 out=""; for _ in $(seq 1 "$n"); do out+="$2 "; done; printf '%s' "${out% }"; }

# r1, r2: the replicas' public ports (8080 in compose.yaml); o1, o2: their
# operator ports (9090).
r1=$(free_port) r2=$(free_port) o1=$(free_port) o2=$(free_port) public=$(free_port) admin=$(free_port)
(umask 077; head -c 32 /dev/urandom | base64 > "$work/kek")
# The same settings as compose.yaml's issuer service.
export NOMOS_ISSUER_DATABASE_URL=$NOMOS_TEST_DATABASE_URL NOMOS_ISSUER_LOG_FORMAT=json \
  NOMOS_ISSUER_KEK_FILE=$work/kek NOMOS_ISSUER_ISSUER=http://localhost:$public \
  NOMOS_ISSUER_ADDRESS_RATE_LIMIT=0 NOMOS_ISSUER_MAX_CONNECTIONS_PER_ADDRESS=0 \
  NOMOS_ISSUER_MAX_IN_FLIGHT_PER_ADDRESS=0
"$BIN" migrate 2>/dev/null
NOMOS_ISSUER_LISTEN=127.0.0.1:$r1 NOMOS_ISSUER_OPERATOR_LISTEN=127.0.0.1:$o1 "$BIN" serve 2>"$work/r1.log" &
pids+=($!)
replica1=$!
sleep 1 # the first replica creates the signing keys; the second finds them
NOMOS_ISSUER_LISTEN=127.0.0.1:$r2 NOMOS_ISSUER_OPERATOR_LISTEN=127.0.0.1:$o2 "$BIN" serve 2>"$work/r2.log" &
pids+=($!)

lb_config() { # lb_config PUBLIC ADMIN: the checked-in config on loopback ports
  sed -e "s/^    bind :8080\$/    bind 127.0.0.1:$1/" -e "s/^    bind :8081\$/    bind 127.0.0.1:$2/" \
      -e 's/ resolvers docker init-addr none$//' \
      -e "s/^    server-template issuer- 4 issuer:8080\$/    server issuer-1 127.0.0.1:$r1\n    server issuer-2 127.0.0.1:$r2/" \
      -e "s/^    server-template issuer- 4 issuer:9090\$/    server issuer-1 127.0.0.1:$o1\n    server issuer-2 127.0.0.1:$o2/" \
      deploy/haproxy/haproxy.cfg
}
lb_config "$public" "$admin" > "$work/haproxy.cfg"
[ "$(grep -c "127.0.0.1:" "$work/haproxy.cfg")" = 6 ] || { step "the config's bind/server lines changed: update this script"; exit 1; }
"$HAPROXY" -W -db -f "$work/haproxy.cfg" > "$work/haproxy.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 60); do
  [ "$(code "http://127.0.0.1:$public/readyz")" = 200 ] && break
  sleep 0.5
done
sleep 1 # both replicas passed a health check

url=http://127.0.0.1:$public
expect "GET /readyz x6 through the public port" "$(repeat 6 200)" "$(codes 6 "$url/readyz")"
expect "both replicas answered" 2 "$(grep -o 'issuers/issuer-[12]' "$work/haproxy.log" | sort -u | wc -l)"
issuer_of() { curl -s "$@" "$url/.well-known/openid-configuration" | python3 -c 'import json,sys; print(json.load(sys.stdin)["issuer"])'; }
expect "discovery issuer" "http://localhost:$public" "$(issuer_of)"
expect "discovery issuer, Host and X-Forwarded-* spoofed" "http://localhost:$public" \
  "$(issuer_of -H 'Host: evil.example' -H 'X-Forwarded-Host: evil.example' -H 'X-Forwarded-Proto: https')"
expect "public /admin/v1/orgs, /Admin/v1/orgs, /metrics" "404 404 404" \
  "$(code "$url/admin/v1/orgs") $(code "$url/Admin/v1/orgs") $(code "$url/metrics")"
expect "admin port /admin/v1/orgs without a token, /metrics" "401 200" \
  "$(code "http://127.0.0.1:$admin/admin/v1/orgs") $(code "http://127.0.0.1:$admin/metrics")"
expect "admin port reaches the operator listeners (no discovery there)" 404 \
  "$(code "http://127.0.0.1:$admin/.well-known/openid-configuration")"
expect "both operator ports answered" 2 "$(grep -o 'operators/issuer-[12]' "$work/haproxy.log" | sort -u | wc -l)"
# The replicas themselves, without the proxy's rules in between.
expect "a replica's public port: /metrics, /admin/v1/orgs, /readyz" "404 404 200" \
  "$(code "http://127.0.0.1:$r2/metrics") $(code "http://127.0.0.1:$r2/admin/v1/orgs") $(code "http://127.0.0.1:$r2/readyz")"
expect "a replica's operator port: /metrics, /readyz, discovery" "200 200 404" \
  "$(code "http://127.0.0.1:$o2/metrics") $(code "http://127.0.0.1:$o2/readyz") $(code "http://127.0.0.1:$o2/.well-known/openid-configuration")"

secret=$("$BIN" org create acme --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')
token=(-u "org%2Facme:$secret" -d grant_type=client_credentials "$url/oauth2/token")
expect "token through the public port" 200 "$(code "${token[@]}")"
kill "$replica1"
expect "20 tokens right after replica 1 stopped" "$(repeat 20 200)" "$(codes 20 "${token[@]}")"
sleep 11 # two failed checks, 5 s apart
expect "replica 1 marked down on both ports" "yes yes" \
  "$(for b in issuers operators; do grep -q "$b/issuer-1 is DOWN" "$work/haproxy.log" && echo yes || echo no; done | xargs)"
expect "GET /readyz x4 with one replica" "$(repeat 4 200)" "$(codes 4 "$url/readyz")"

# The per-address limits on a second LB: token requests lowered from 2000 to 5
# per 10 s, open connections from 256 to 3.
public2=$(free_port) admin2=$(free_port)
lb_config "$public2" "$admin2" \
  | sed -e 's/sc_http_req_rate(0) gt 2000/sc_http_req_rate(0) gt 5/' -e 's/sc1_conn_cur gt 256/sc1_conn_cur gt 3/' \
  > "$work/haproxy2.cfg"
[ "$(grep -c -e 'sc_http_req_rate(0) gt 5' -e 'sc1_conn_cur gt 3' "$work/haproxy2.cfg")" = 2 ] \
  || { step "the config's per-address limits changed: update this script"; exit 1; }
"$HAPROXY" -W -db -f "$work/haproxy2.cfg" > "$work/haproxy2.log" 2>&1 &
pids+=($!)
sleep 1
token2=(-u "org%2Facme:$secret" -d grant_type=client_credentials "http://127.0.0.1:$public2/oauth2/token")
expect "8 tokens with the limit at 5" "200 200 200 200 200 429 429 429" "$(codes 8 "${token2[@]}")"
expect "the 429 is an OAuth slow_down with Retry-After" "slow_down 1" \
  "$(curl -s -D "$work/h" "${token2[@]}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["error"])') $(tr -d '\r' < "$work/h" | awk 'tolower($1)=="retry-after:" {print $2}')"
expect "discovery is not limited" 200 "$(code "http://127.0.0.1:$public2/.well-known/openid-configuration")"
# Three idle connections from this address stay open for 3 s.
python3 -c 'import socket, sys, time
held = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(3)]
time.sleep(3)' "$public2" &
pids+=($!)
holder=$!
sleep 1
expect "a 4th connection while 3 are open is closed" 000 "$(code "http://127.0.0.1:$public2/readyz")"
wait "$holder"
expect "a connection once they closed" 200 "$(code "http://127.0.0.1:$public2/readyz")"

if [ "$failures" -ne 0 ]; then
  for log in "$work"/*.log; do step "--- $log"; tail -n 8 "$log"; done
  step "$failures check(s) FAILED"
  exit 1
fi
step "all checks passed"
