output "kms_key_arn" {
  description = "ARN of the customer-managed key that encrypts secrets, logs, the NATS file system, the alarm topic and the function environment."
  value       = aws_kms_key.this.arn
}

output "discord_token_secret_arn" {
  description = "ARN of the Discord bot token secret."
  value       = aws_secretsmanager_secret.discord_token.arn
}

output "webhook_signing_secret_arn" {
  description = "ARN of the Standard Webhooks signing key secret."
  value       = aws_secretsmanager_secret.webhook_signing.arn
}

output "nats_auth_secret_arn" {
  description = "ARN of the NATS client credentials secret (null without a managed cluster)."
  value       = one(aws_secretsmanager_secret.nats_auth[*].arn)
}

output "nats_tls_secret_arn" {
  description = "ARN of the NATS TLS secret (null without a managed cluster)."
  value       = one(aws_secretsmanager_secret.nats_tls[*].arn)
}
