# Renders the IAM trust policy that lets one nomos-issuer binding (one agent of
# an org, or any agent of the org) call sts:AssumeRoleWithWebIdentity.
#
# This module has no providers on purpose: it is pure computation, so it can be
# rendered offline (see ../testdata/render) and compared with the policy that
# `nomos-issuer aws trust-policy` prints. Both must stay identical.

terraform {
  required_version = ">= 1.3"
}

locals {
  # IAM condition keys and the provider ARN use the issuer URL without its scheme,
  # path included: https://id.example.com/orgs/acme -> id.example.com/orgs/acme
  host_path    = trimprefix(var.issuer_url, "https://")
  provider_arn = "arn:${var.partition}:iam::${var.account_id}:oidc-provider/${local.host_path}"

  any_agent = var.agent == null

  # Sid: only [A-Za-z0-9] is allowed, so drop every other character of each id
  # and upper-case its first character.
  org_alnum   = replace(var.org, "/[^A-Za-z0-9]/", "")
  org_sid     = "${upper(substr(local.org_alnum, 0, 1))}${substr(local.org_alnum, 1, -1)}"
  agent_alnum = local.any_agent ? "" : replace(var.agent, "/[^A-Za-z0-9]/", "")
  agent_sid   = local.any_agent ? "" : "${upper(substr(local.agent_alnum, 0, 1))}${substr(local.agent_alnum, 1, -1)}"
  sid         = local.any_agent ? "NomosOrg${local.org_sid}AnyAgent" : "NomosOrg${local.org_sid}Agent${local.agent_sid}"

  # The subject the issuer puts in `sub`. Org and agent ids can never contain
  # `*`, `?` or `/`, so the any-agent pattern cannot match outside this org.
  subject = local.any_agent ? "org/${var.org}/agent/*" : "org/${var.org}/agent/${var.agent}"

  actions = concat(
    ["sts:AssumeRoleWithWebIdentity"],
    var.tags_enabled ? ["sts:TagSession"] : [],
    var.source_identity ? ["sts:SetSourceIdentity"] : [],
  )

  condition = local.any_agent ? {
    StringEquals = {
      "${local.host_path}:aud" = var.audience
    }
    StringLike = {
      "${local.host_path}:sub" = local.subject
    }
    } : {
    StringEquals = {
      "${local.host_path}:aud" = var.audience
      "${local.host_path}:sub" = local.subject
    }
  }

  policy = {
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = local.sid
        Effect    = "Allow"
        Principal = { Federated = local.provider_arn }
        Action    = local.actions
        Condition = local.condition
      },
    ]
  }
}
