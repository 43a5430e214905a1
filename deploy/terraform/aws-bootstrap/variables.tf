variable "issuer_url" {
  description = "The nomos-issuer URL, byte-for-byte the `issuer` of its discovery document: https://, no port, no query, an optional path, no trailing slash."
  type        = string
  nullable    = false

  validation {
    condition     = length(var.issuer_url) <= 255 && can(regex("^https://[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(/[A-Za-z0-9._~%-]+)*$", var.issuer_url))
    error_message = "The issuer_url must be https://HOST or https://HOST/PATH (at most 255 characters, no port, query, fragment, empty path segment or trailing slash)."
  }
}

variable "client_ids" {
  description = "Client IDs (audiences) registered on the IAM OIDC provider."
  type        = list(string)
  default     = ["sts.amazonaws.com"]
  nullable    = false

  validation {
    condition     = length(var.client_ids) >= 1 && length(var.client_ids) <= 100 && alltrue([for c in var.client_ids : length(c) >= 1 && length(c) <= 255]) && length(distinct(var.client_ids)) == length(var.client_ids)
    error_message = "The client_ids must be 1 to 100 distinct strings of 1 to 255 characters."
  }
}

variable "thumbprints" {
  description = "TLS thumbprints (SHA-1, 40 hex digits) of the top intermediate CA. Leave empty for a certificate from a public CA: IAM then checks it against its trusted roots."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = length(var.thumbprints) <= 5 && alltrue([for t in var.thumbprints : can(regex("^[0-9A-Fa-f]{40}$", t))])
    error_message = "At most 5 thumbprints, each 40 hexadecimal digits."
  }
}

variable "org" {
  description = "The nomos-issuer org id whose agents get roles."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.org))
    error_message = "The org must match ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$."
  }
}

variable "agents" {
  description = "Agent ids of the org; each gets its own role, trusted only for sub = org/<org>/agent/<agent>."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for a in var.agents : can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", a))]) && length(distinct(var.agents)) == length(var.agents)
    error_message = "Each agent must match ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ and appear once."
  }
}

variable "any_agent" {
  description = "Also create one role that trusts every agent of the org (sub StringLike org/<org>/agent/*). Its binding name is \"*\"."
  type        = bool
  default     = false
  nullable    = false
}

variable "allowed_actions" {
  description = "IAM actions the roles may perform (inline policy), e.g. [\"s3:GetObject\"]."
  type        = list(string)
  nullable    = false

  validation {
    condition     = length(var.allowed_actions) >= 1 && alltrue([for a in var.allowed_actions : can(regex("^([A-Za-z0-9-]+:[A-Za-z0-9*?]+|\\*)$", a))])
    error_message = "The allowed_actions must be a non-empty list of service:Action strings (wildcards * and ? allowed)."
  }
}

variable "allowed_resources" {
  description = "Resources the allowed_actions apply to (inline policy)."
  type        = list(string)
  default     = ["*"]
  nullable    = false

  validation {
    condition     = length(var.allowed_resources) >= 1 && alltrue([for r in var.allowed_resources : r == "*" || startswith(r, "arn:")])
    error_message = "The allowed_resources must be a non-empty list of ARNs or \"*\"."
  }
}

variable "tags_enabled" {
  description = "Allow sts:TagSession in the trust policies. Turn it on exactly when the issuer puts session tags in this org's tokens: a role without it rejects tokens that carry tags."
  type        = bool
  default     = false
  nullable    = false
}

variable "source_identity" {
  description = "Allow sts:SetSourceIdentity in the trust policies (tokens carrying a source identity)."
  type        = bool
  default     = false
  nullable    = false
}

variable "audience" {
  description = "The `aud` the roles accept; must be one of client_ids."
  type        = string
  default     = "sts.amazonaws.com"
  nullable    = false

  validation {
    condition     = length(var.audience) >= 1 && length(var.audience) <= 255
    error_message = "The audience must be 1 to 255 characters."
  }
}

variable "target_account_id" {
  description = "The AWS account (12 digits) this is applied to; the plan fails if the credentials in use belong to another account."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[0-9]{12}$", var.target_account_id))
    error_message = "The target_account_id must be exactly 12 digits."
  }
}

variable "partition" {
  description = "The AWS partition of target_account_id: aws, aws-cn, aws-us-gov, ..."
  type        = string
  default     = "aws"
  nullable    = false

  validation {
    condition     = can(regex("^aws(-[a-z]+)*$", var.partition))
    error_message = "The partition must look like aws, aws-cn or aws-us-gov."
  }
}

variable "role_name_prefix" {
  description = "Roles are named <prefix>-<org>-<agent> or <prefix>-<org>-any-agent, cut to 64 characters."
  type        = string
  default     = "nomos"
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z0-9+=,.@_-]{1,32}$", var.role_name_prefix))
    error_message = "The role_name_prefix must be 1 to 32 characters of [A-Za-z0-9+=,.@_-]."
  }
}

# Optional extras.

variable "create_provider" {
  description = "Create the IAM OIDC provider. Set false when the account already has one for issuer_url (IAM allows one per URL and account, e.g. when a second org of the same issuer is connected to the same account); it is then looked up and must list audience among its client IDs."
  type        = bool
  default     = true
  nullable    = false
}

variable "max_session_duration" {
  description = "Maximum session duration of the roles, in seconds (3600 to 43200)."
  type        = number
  default     = 3600
  nullable    = false

  validation {
    condition     = var.max_session_duration >= 3600 && var.max_session_duration <= 43200
    error_message = "The max_session_duration must be between 3600 and 43200 seconds."
  }
}

variable "permissions_boundary_arn" {
  description = "ARN of a managed policy to set as the roles' permissions boundary, or null."
  type        = string
  default     = null
}

variable "resource_tags" {
  description = "AWS resource tags for the provider and the roles (not session tags)."
  type        = map(string)
  default     = {}
  nullable    = false
}
