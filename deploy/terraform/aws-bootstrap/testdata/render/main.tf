# A root configuration with no providers that renders one trust policy through
# ../../trust-policy, so that it can be compared offline with the output of
# `nomos-issuer aws trust-policy`. Used by ../../../render-trust-policy.sh:
#
#   terraform -chdir=THIS_DIR init -input=false
#   terraform -chdir=THIS_DIR apply -auto-approve -input=false \
#     -var org=acme -var agent=deployer -var issuer_url=https://id.example.com \
#     -var account_id=111122223333
#   terraform -chdir=THIS_DIR output -raw json
#
# Leave `agent` unset for the any-agent policy.

terraform {
  required_version = ">= 1.3"
}

variable "issuer_url" {
  type = string
}

variable "account_id" {
  type = string
}

variable "partition" {
  type    = string
  default = "aws"
}

variable "org" {
  type = string
}

variable "agent" {
  type    = string
  default = null
}

variable "audience" {
  type    = string
  default = "sts.amazonaws.com"
}

variable "tags_enabled" {
  type    = bool
  default = false
}

variable "source_identity" {
  type    = bool
  default = false
}

module "trust_policy" {
  source = "../../trust-policy"

  issuer_url      = var.issuer_url
  account_id      = var.account_id
  partition       = var.partition
  org             = var.org
  agent           = var.agent
  audience        = var.audience
  tags_enabled    = var.tags_enabled
  source_identity = var.source_identity
}

output "json" {
  value = module.trust_policy.json
}
