#!/usr/bin/env bash
# Self-test of the IAM oracle: installs the pinned simulator, then runs a table
# of trust-policy cases through simulate.mjs and compares stdout + exit code.
# Exits non-zero on any mismatch. Takes a few seconds (one node process per case).
set -uo pipefail

src="${BASH_SOURCE[0]}"
case "$src" in */*) here="${src%/*}" ;; *) here=. ;; esac
here="$(cd "$here" && pwd)"

bash "$here/install.sh" || exit 1

tmp="$(mktemp -d "${TMPDIR:-/tmp}/iam-selftest.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

ACCT=111122223333
HOST=id.example.com/orgs/acme
PROVIDER="arn:aws:iam::$ACCT:oidc-provider/$HOST"
ROLE="arn:aws:iam::$ACCT:role/deployer"
AUD=sts.amazonaws.com

# Policy "exact": StringEquals on sub and aud (the issuer's recommended policy).
cat >"$tmp/exact.json" <<JSON
{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"$PROVIDER"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringEquals":{"$HOST:aud":"$AUD","$HOST:sub":"org/acme/agent/deployer"}}}]}
JSON
# Policy "like": StringLike wildcard on sub, StringEquals on aud.
cat >"$tmp/like.json" <<JSON
{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"$PROVIDER"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringEquals":{"$HOST:aud":"$AUD"},"StringLike":{"$HOST:sub":"org/acme/agent/*"}}}]}
JSON
# Policy "tags": also allows sts:TagSession (needed when the token carries session tags).
cat >"$tmp/tags.json" <<JSON
{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"$PROVIDER"},"Action":["sts:AssumeRoleWithWebIdentity","sts:TagSession"],"Condition":{"StringEquals":{"$HOST:aud":"$AUD","$HOST:sub":"org/acme/agent/deployer"}}}]}
JSON
# Policy "deny": allow the provider, explicitly deny one subject.
cat >"$tmp/deny.json" <<JSON
{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"$PROVIDER"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringEquals":{"$HOST:aud":"$AUD"}}},{"Effect":"Deny","Principal":{"Federated":"$PROVIDER"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringEquals":{"$HOST:sub":"org/acme/agent/blocked"}}}]}
JSON
# Policy "acct": trusts the account, not the provider (does not admit web identities).
cat >"$tmp/acct.json" <<JSON
{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::$ACCT:root"},"Action":"sts:AssumeRoleWithWebIdentity"}]}
JSON
# Policy "open": provider with no condition at all.
cat >"$tmp/open.json" <<JSON
{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"$PROVIDER"},"Action":"sts:AssumeRoleWithWebIdentity"}]}
JSON
# Policy "bad": a Resource element is not allowed in a trust policy.
cat >"$tmp/bad.json" <<JSON
{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"$PROVIDER"},"Action":"sts:AssumeRoleWithWebIdentity","Resource":"*"}]}
JSON

# req ACTION SUB AUD [PRINCIPAL] -> REQUEST_JSON (an empty SUB/AUD leaves the key out)
req() {
  local action="$1" sub="$2" aud="$3" principal="${4:-$PROVIDER}" ctx=""
  [ -n "$sub" ] && ctx="\"$HOST:sub\":\"$sub\""
  [ -n "$aud" ] && ctx="${ctx:+$ctx,}\"$HOST:aud\":\"$aud\""
  printf '{"action":"%s","principal":"%s","role_arn":"%s","context":{%s}}' \
    "$action" "$principal" "$ROLE" "$ctx"
}

pass=0
fail=0
# check NAME POLICY EXPECTED REQUEST_JSON; EXPECTED is a result word or "usage".
check() {
  local name="$1" policy="$2" expected="$3" request="$4"
  local out rc want_rc
  out="$(node "$here/simulate.mjs" "$tmp/$policy.json" "$request" 2>"$tmp/stderr")"
  rc=$?
  case "$expected" in
    Allowed) want_rc=0 ;;
    ImplicitlyDenied | ExplicitlyDenied) want_rc=1 ;;
    usage) want_rc=2; expected="" ;;
  esac
  if [ "$out" = "$expected" ] && [ "$rc" = "$want_rc" ]; then
    pass=$((pass + 1))
    printf 'ok   %-52s %s\n' "$name" "${out:-exit 2}"
  else
    fail=$((fail + 1))
    printf 'FAIL %-52s got "%s" exit %s, want "%s" exit %s\n' "$name" "$out" "$rc" "$expected" "$want_rc"
    sed 's/^/     stderr: /' "$tmp/stderr"
  fi
}

W=sts:AssumeRoleWithWebIdentity
D=org/acme/agent/deployer

check "exact: sub+aud match"                      exact Allowed          "$(req $W $D $AUD)"
check "exact: other agent"                        exact ImplicitlyDenied "$(req $W org/acme/agent/other $AUD)"
check "exact: org acme-agent (prefix confusion)"  exact ImplicitlyDenied "$(req $W org/acme-agent/agent/deployer $AUD)"
check "exact: org only, no agent"                 exact ImplicitlyDenied "$(req $W org/acme $AUD)"
check "exact: other aud"                          exact ImplicitlyDenied "$(req $W $D other)"
check "exact: other provider path"                exact ImplicitlyDenied "$(req $W $D $AUD arn:aws:iam::$ACCT:oidc-provider/id.example.com/orgs/evil)"
check "exact: provider in another account"        exact ImplicitlyDenied "$(req $W $D $AUD arn:aws:iam::444455556666:oidc-provider/$HOST)"
check "exact: action sts:AssumeRole"              exact ImplicitlyDenied "$(req sts:AssumeRole $D $AUD)"
check "exact: action sts:TagSession not listed"   exact ImplicitlyDenied "$(req sts:TagSession $D $AUD)"
check "exact: sub key missing"                    exact ImplicitlyDenied "$(req $W "" $AUD)"
check "exact: no context at all"                  exact ImplicitlyDenied "$(req $W "" "")"
check "exact: sub value differs in case only"     exact ImplicitlyDenied "$(req $W org/acme/agent/Deployer $AUD)"
check "exact: key names upper-cased"              exact Allowed \
  "{\"action\":\"$W\",\"principal\":\"$PROVIDER\",\"role_arn\":\"$ROLE\",\"context\":{\"ID.EXAMPLE.COM/ORGS/ACME:SUB\":\"$D\",\"Id.Example.Com/Orgs/Acme:Aud\":\"$AUD\"}}"
check "exact: extra tag keys pass through"        exact Allowed \
  "{\"action\":\"$W\",\"principal\":\"$PROVIDER\",\"role_arn\":\"$ROLE\",\"context\":{\"$HOST:sub\":\"$D\",\"$HOST:aud\":\"$AUD\",\"aws:RequestTag/Team\":\"ops\",\"sts:TransitiveTagKeys\":[\"Team\"]}}"

check "like: org/acme/agent/x"                    like Allowed           "$(req $W org/acme/agent/x $AUD)"
check "like: org/acme-agent/agent/x"              like ImplicitlyDenied  "$(req $W org/acme-agent/agent/x $AUD)"
check "like: org/acmex/agent/x"                   like ImplicitlyDenied  "$(req $W org/acmex/agent/x $AUD)"
check "like: org/acme"                            like ImplicitlyDenied  "$(req $W org/acme $AUD)"
check "like: * also matches across /"             like Allowed           "$(req $W org/acme/agent/x/y $AUD)"
check "like: * matches the empty string"          like Allowed           "$(req $W org/acme/agent/ $AUD)"
check "like: other aud"                           like ImplicitlyDenied  "$(req $W org/acme/agent/x other)"

check "tags: sts:TagSession allowed"              tags Allowed           "$(req sts:TagSession $D $AUD)"
check "tags: AssumeRoleWithWebIdentity allowed"   tags Allowed           "$(req $W $D $AUD)"
check "tags: TagSession for other agent"          tags ImplicitlyDenied  "$(req sts:TagSession org/acme/agent/other $AUD)"
check "tags: sts:SetSourceIdentity not listed"    tags ImplicitlyDenied  "$(req sts:SetSourceIdentity $D $AUD)"

check "deny: allowed subject"                     deny Allowed           "$(req $W $D $AUD)"
check "deny: explicitly denied subject"           deny ExplicitlyDenied  "$(req $W org/acme/agent/blocked $AUD)"
check "acct: account principal admits no OIDC"    acct ImplicitlyDenied  "$(req $W $D $AUD)"
check "open: unconditioned provider, no context"  open Allowed           "$(req $W "" "")"

check "usage: invalid trust policy (Resource)"    bad  usage             "$(req $W $D $AUD)"
check "usage: unknown action"                     exact usage            "$(req sts:NoSuchAction $D $AUD)"
check "usage: REQUEST_JSON not JSON"              exact usage            "not json"
check "usage: missing role_arn"                   exact usage            "{\"action\":\"$W\",\"principal\":\"$PROVIDER\"}"
check "usage: missing policy file"                nosuchfile usage       "$(req $W $D $AUD)"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
