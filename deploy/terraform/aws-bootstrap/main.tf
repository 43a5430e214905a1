# Connects one AWS account to a nomos-issuer: the IAM OIDC provider for the
# issuer URL, and one role per binding (an agent of the org, or any agent of the
# org) whose trust policy is rendered by ./trust-policy.

locals {
  host_path = trimprefix(var.issuer_url, "https://")

  # Binding name => agent id (null: any agent of the org). "*" can never be an
  # agent id, so the names cannot collide.
  bindings = merge(
    { for a in var.agents : a => a },
    var.any_agent ? { "*" = null } : {},
  )

  role_names = {
    for name, agent in local.bindings :
    name => substr(format("%s-%s-%s", var.role_name_prefix, var.org, agent == null ? "any-agent" : agent), 0, 64)
  }

  # Checks that involve several variables (a variable's own validation may only
  # look at that variable before Terraform 1.9).
  config_errors = concat(
    contains(var.client_ids, var.audience) ? [] : ["audience \"${var.audience}\" is not one of client_ids"],
    length(distinct(values(local.role_names))) == length(local.role_names) ? [] : ["two bindings get the same role name (an agent named \"any-agent\" with any_agent = true, or names cut at 64 characters)"],
  )
}

data "aws_caller_identity" "current" {
  lifecycle {
    postcondition {
      condition     = self.account_id == var.target_account_id
      error_message = "The AWS credentials in use belong to account ${self.account_id}, not target_account_id ${var.target_account_id}."
    }
  }
}

data "aws_partition" "current" {
  lifecycle {
    postcondition {
      condition     = self.partition == var.partition
      error_message = "The AWS provider is in partition ${self.partition}, not ${var.partition}."
    }
  }
}

module "trust_policy" {
  source   = "./trust-policy"
  for_each = local.bindings

  issuer_url      = var.issuer_url
  account_id      = var.target_account_id
  partition       = var.partition
  org             = var.org
  agent           = each.value
  audience        = var.audience
  tags_enabled    = var.tags_enabled
  source_identity = var.source_identity
}

resource "aws_iam_openid_connect_provider" "this" {
  count = var.create_provider ? 1 : 0

  url            = var.issuer_url
  client_id_list = var.client_ids
  # Null (not []) when empty, so that IAM's own choice is not a diff.
  thumbprint_list = length(var.thumbprints) > 0 ? var.thumbprints : null
  tags            = var.resource_tags

  lifecycle {
    precondition {
      condition     = length(local.config_errors) == 0
      error_message = join("; ", local.config_errors)
    }
    postcondition {
      # The trust policies name the provider by an ARN computed offline; it
      # must be the ARN IAM gave it.
      condition     = self.arn == "arn:${var.partition}:iam::${var.target_account_id}:oidc-provider/${local.host_path}"
      error_message = "The provider ARN ${self.arn} differs from the one the trust policies name."
    }
  }
}

data "aws_iam_openid_connect_provider" "existing" {
  count = var.create_provider ? 0 : 1

  arn = "arn:${var.partition}:iam::${var.target_account_id}:oidc-provider/${local.host_path}"

  lifecycle {
    postcondition {
      condition     = contains(self.client_id_list, var.audience)
      error_message = "The existing OIDC provider for ${var.issuer_url} does not list the audience \"${var.audience}\" among its client IDs."
    }
  }
}

locals {
  provider_arn = var.create_provider ? aws_iam_openid_connect_provider.this[0].arn : data.aws_iam_openid_connect_provider.existing[0].arn
}

resource "aws_iam_role" "this" {
  for_each = local.bindings

  name                 = local.role_names[each.key]
  description          = each.value == null ? "nomos-issuer: any agent of org ${var.org}" : "nomos-issuer: agent ${each.value} of org ${var.org}"
  assume_role_policy   = module.trust_policy[each.key].json
  max_session_duration = var.max_session_duration
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.resource_tags

  # IAM refuses a trust policy whose federated principal does not exist yet.
  depends_on = [aws_iam_openid_connect_provider.this, data.aws_iam_openid_connect_provider.existing]

  lifecycle {
    precondition {
      condition     = length(local.config_errors) == 0
      error_message = join("; ", local.config_errors)
    }
    precondition {
      condition     = module.trust_policy[each.key].provider_arn == "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:oidc-provider/${local.host_path}"
      error_message = "The trust policy names a provider outside the account and partition in use."
    }
  }
}

resource "aws_iam_role_policy" "allowed" {
  for_each = local.bindings

  name = "nomos-allowed"
  role = aws_iam_role.this[each.key].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "NomosAllowed"
        Effect   = "Allow"
        Action   = var.allowed_actions
        Resource = var.allowed_resources
      },
    ]
  })
}
