output "provider_arn" {
  description = "ARN of the IAM OIDC provider for issuer_url."
  value       = local.provider_arn
}

output "role_arns" {
  description = "Binding name (the agent id, or \"*\" for any agent) => role ARN."
  value       = { for name, role in aws_iam_role.this : name => role.arn }
}

output "role_names" {
  description = "Binding name => role name."
  value       = { for name, role in aws_iam_role.this : name => role.name }
}

output "trust_policies" {
  description = "Binding name => the trust policy JSON (as rendered, before IAM normalises it)."
  value       = { for name, tp in module.trust_policy : name => tp.json }
}
