#!/usr/bin/env bash
# Renders the IAM trust policy of one nomos-issuer binding with the Terraform
# module aws-bootstrap/trust-policy, offline (no providers are involved), and
# prints its JSON on stdout followed by a newline.
#
#   render-trust-policy.sh ORG AGENT|- AUDIENCE TAGS SOURCE_IDENTITY ISSUER_URL ACCOUNT [PARTITION]
#
#   AGENT            an agent id, or - for the any-agent policy
#   TAGS             true|false: allow sts:TagSession
#   SOURCE_IDENTITY  true|false: allow sts:SetSourceIdentity
#   PARTITION        default aws
#
# Each run works on a private copy of aws-bootstrap/testdata/render in a new
# temporary directory (removed on exit), so runs may go in parallel and the
# repository is left untouched. Terraform's messages go to stderr only when it
# fails; the exit status is then non-zero (2 for bad usage).
# Environment: TERRAFORM (default: terraform on PATH).
set -euo pipefail

usage() {
  echo "usage: $0 ORG AGENT|- AUDIENCE TAGS(true|false) SOURCE_IDENTITY(true|false) ISSUER_URL ACCOUNT [PARTITION]" >&2
  exit 2
}

[[ $# -eq 7 || $# -eq 8 ]] || usage
org=$1 agent=$2 audience=$3 tags=$4 source_identity=$5 issuer_url=$6 account=$7 partition=${8:-aws}
[[ $tags == true || $tags == false ]] || usage
[[ $source_identity == true || $source_identity == false ]] || usage

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
module_dir=$here/aws-bootstrap
tf=${TERRAFORM:-terraform}

work=$(mktemp -d "${TMPDIR:-/tmp}/nomos-render-trust-policy.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Keep the relative layout (testdata/render uses ../../trust-policy), but copy
# only the configuration: no .terraform/ or state of a run made in the repo.
mkdir -p "$work/aws-bootstrap/trust-policy" "$work/aws-bootstrap/testdata/render"
cp "$module_dir"/trust-policy/*.tf "$work/aws-bootstrap/trust-policy/"
cp "$module_dir"/testdata/render/*.tf "$work/aws-bootstrap/testdata/render/"
root=$work/aws-bootstrap/testdata/render

# A hermetic Terraform: no version check over the network, no prompts, no CLI
# configuration, and nothing from the caller's TF_VAR_*, TF_CLI_ARGS* or
# TF_DATA_DIR that could change the result or make parallel runs collide.
while IFS= read -r name; do
  case $name in
    TF_VAR_* | TF_CLI_ARGS* | TF_DATA_DIR | TF_WORKSPACE) unset "$name" ;;
  esac
done < <(compgen -e)
: >"$work/terraformrc"
export TF_CLI_CONFIG_FILE=$work/terraformrc CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_INPUT=0

vars=(
  -var "org=$org"
  -var "audience=$audience"
  -var "tags_enabled=$tags"
  -var "source_identity=$source_identity"
  -var "issuer_url=$issuer_url"
  -var "account_id=$account"
  -var "partition=$partition"
)
# Leaving `agent` unset keeps its default, null: the any-agent policy.
[[ $agent == - ]] || vars+=(-var "agent=$agent")

log=$work/terraform.log
if ! "$tf" -chdir="$root" init -input=false -no-color >"$log" 2>&1 ||
  ! "$tf" -chdir="$root" apply -auto-approve -input=false -no-color "${vars[@]}" >>"$log" 2>&1; then
  cat "$log" >&2
  exit 1
fi
"$tf" -chdir="$root" output -no-color -raw json
echo
