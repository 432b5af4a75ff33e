variable "name" {
  type        = string
  description = "Name prefix; secrets are created under \"<name>/\"."
}

variable "recovery_window_days" {
  type        = number
  description = "Days a deleted secret can still be restored (0 deletes at once, otherwise 7 to 30)."

  validation {
    condition     = var.recovery_window_days == 0 || (var.recovery_window_days >= 7 && var.recovery_window_days <= 30)
    error_message = "recovery_window_days must be 0 or between 7 and 30."
  }
}

variable "kms_deletion_window_days" {
  type        = number
  description = "Waiting period before the stack's KMS key is deleted after destroy (7 to 30)."

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be between 7 and 30."
  }
}

variable "discord_token" {
  type        = string
  description = "Optional bot token. When null (recommended) the secret is created empty and its value is set out of band; when set it is written with a write-only argument and never stored in state."
  sensitive   = true
  default     = null
}

variable "discord_token_version" {
  type        = number
  description = "Bump to write a new discord_token value (write-only arguments are only sent when this changes)."
  default     = 1
}

variable "webhook_secret_version" {
  type        = number
  description = "Bump to generate a new webhook signing key (replaces the old one; see DEPLOY.md for overlap-free rotation)."
  default     = 1
}

variable "create_nats_secrets" {
  type        = bool
  description = "Create the NATS client password and TLS secrets (managed NATS cluster only)."
}

variable "nats_user" {
  type        = string
  description = "User name that the shardline services use to connect to the managed NATS cluster."
  default     = "shardline"
}

variable "nats_password_version" {
  type        = number
  description = "Bump to generate a new NATS client password (restart NATS and services afterwards)."
  default     = 1
}

variable "nats_tls_pem" {
  type = object({
    ca   = string
    cert = string
    key  = string
  })
  description = "Optional PEM-encoded CA, server certificate and key for NATS TLS. When null (recommended) the secret is created empty and filled out of band; when set it is written with a write-only argument and never stored in state."
  sensitive   = true
  default     = null
}

variable "nats_tls_version" {
  type        = number
  description = "Bump to write a new nats_tls_pem value."
  default     = 1
}
