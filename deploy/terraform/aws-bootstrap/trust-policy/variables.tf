variable "issuer_url" {
  description = "The issuer URL exactly as in the tokens' `iss`: https://, no port, no query, an optional path, no trailing slash."
  type        = string
  nullable    = false

  validation {
    condition     = length(var.issuer_url) <= 255 && can(regex("^https://[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(/[A-Za-z0-9._~%-]+)*$", var.issuer_url))
    error_message = "The issuer_url must be https://HOST or https://HOST/PATH (at most 255 characters, no port, query, fragment, empty path segment or trailing slash)."
  }
}

variable "account_id" {
  description = "The AWS account that holds the IAM OIDC provider and the role (12 digits)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[0-9]{12}$", var.account_id))
    error_message = "The account_id must be exactly 12 digits."
  }
}

variable "partition" {
  description = "The AWS partition: aws, aws-cn, aws-us-gov, ..."
  type        = string
  default     = "aws"
  nullable    = false

  validation {
    condition     = can(regex("^aws(-[a-z]+)*$", var.partition))
    error_message = "The partition must look like aws, aws-cn or aws-us-gov."
  }
}

variable "org" {
  description = "The nomos-issuer org id."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.org))
    error_message = "The org must match ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$."
  }
}

variable "agent" {
  description = "The agent id, or null for a role that trusts every agent of the org (sub matched with StringLike org/<org>/agent/*)."
  type        = string
  default     = null

  validation {
    condition     = var.agent == null || can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.agent))
    error_message = "The agent must be null or match ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$."
  }
}

variable "audience" {
  description = "The `aud` the tokens carry; must be one of the provider's client IDs."
  type        = string
  default     = "sts.amazonaws.com"
  nullable    = false

  validation {
    condition     = length(var.audience) >= 1 && length(var.audience) <= 255
    error_message = "The audience must be 1 to 255 characters."
  }
}

variable "tags_enabled" {
  description = "Also allow sts:TagSession (needed when the issuer puts session tags in the tokens)."
  type        = bool
  default     = false
  nullable    = false
}

variable "source_identity" {
  description = "Also allow sts:SetSourceIdentity (needed when the tokens carry a source identity)."
  type        = bool
  default     = false
  nullable    = false
}
