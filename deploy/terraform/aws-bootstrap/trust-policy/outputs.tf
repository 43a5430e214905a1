output "policy" {
  description = "The trust policy as an object."
  value       = local.policy
}

output "json" {
  description = "The trust policy as a JSON string (jsonencode of `policy`)."
  value       = jsonencode(local.policy)
}

output "provider_arn" {
  description = "The ARN the IAM OIDC provider for issuer_url has in account_id."
  value       = local.provider_arn
}

output "sid" {
  description = "The statement id."
  value       = local.sid
}

output "subject" {
  description = "The `sub` value (or, for any agent, the StringLike pattern) the policy matches."
  value       = local.subject
}
