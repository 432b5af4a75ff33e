# Secrets: one customer-managed KMS key for the stack's data at rest, and the
# Secrets Manager containers that the services read at start.
#
# Secret values stay out of Terraform state: either they are set out of band
# (aws secretsmanager put-secret-value), or they are written through write-only
# arguments (Terraform >= 1.11), and generated values come from an ephemeral
# resource that is never persisted.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
}

# A key policy's "*" resource means this key only, and the account root
# statement is what hands the key's administration to IAM.
data "aws_iam_policy_document" "key" {
  # checkov:skip=CKV_AWS_111: key policy; Resource "*" is the key itself and the write actions are granted to this account's root only.
  # checkov:skip=CKV_AWS_356: key policy; Resource "*" is the key itself.
  # checkov:skip=CKV_AWS_109: key policy; the account root must keep kms:PutKeyPolicy, or the key becomes unmanageable.
  # Key administration and use stay with IAM policies in this account.
  statement {
    sid       = "AccountAdministersKey"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  # CloudWatch Logs encrypts this stack's log groups with the key.
  statement {
    sid       = "LogsUseKeyForThisAccount"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"]
    }
  }

  # CloudWatch alarms publish to the encrypted alarm topic.
  statement {
    sid       = "AlarmsPublishToEncryptedTopic"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_kms_key" "this" {
  description             = "${var.name}: secrets, logs, file system and function environment"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.key.json
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}

# --- Discord bot token --------------------------------------------------------

resource "aws_secretsmanager_secret" "discord_token" {
  # checkov:skip=CKV2_AWS_57: Discord bot tokens cannot be rotated through an API; they are reset in the Developer Portal and written here out of band.
  name                    = "${var.name}/discord-token"
  description             = "Discord bot token (value set out of band; read by the gateway and the bot function)"
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = var.recovery_window_days
}

resource "aws_secretsmanager_secret_version" "discord_token" {
  count = nonsensitive(var.discord_token != null) ? 1 : 0

  secret_id                = aws_secretsmanager_secret.discord_token.id
  secret_string_wo         = var.discord_token
  secret_string_wo_version = var.discord_token_version
}

# --- Webhook signing keys (Standard Webhooks) --------------------------------

ephemeral "aws_secretsmanager_random_password" "webhook" {
  password_length     = 48
  exclude_punctuation = true
}

resource "aws_secretsmanager_secret" "webhook_signing" {
  # checkov:skip=CKV2_AWS_57: the signing key list is rotated by bumping webhook_secret_version or out of band, because bridge and receivers must overlap keys during rotation.
  name                    = "${var.name}/webhook-signing-keys"
  description             = "Standard Webhooks signing keys (JSON list of whsec_ strings, newest first) for HTTPS deliveries"
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = var.recovery_window_days
}

resource "aws_secretsmanager_secret_version" "webhook_signing" {
  secret_id                = aws_secretsmanager_secret.webhook_signing.id
  secret_string_wo         = jsonencode(["whsec_${base64encode(ephemeral.aws_secretsmanager_random_password.webhook.random_password)}"])
  secret_string_wo_version = var.webhook_secret_version
}

# --- NATS client credentials and TLS (managed cluster only) -------------------

ephemeral "aws_secretsmanager_random_password" "nats" {
  count = var.create_nats_secrets ? 1 : 0

  password_length     = 40
  exclude_punctuation = true
}

resource "aws_secretsmanager_secret" "nats_auth" {
  # checkov:skip=CKV2_AWS_57: the NATS password is regenerated by bumping nats_password_version; a rotation Lambda would need to restart the cluster.
  count = var.create_nats_secrets ? 1 : 0

  name                    = "${var.name}/nats-auth"
  description             = "NATS client credentials as JSON {user, password}"
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = var.recovery_window_days
}

resource "aws_secretsmanager_secret_version" "nats_auth" {
  count = var.create_nats_secrets ? 1 : 0

  secret_id = aws_secretsmanager_secret.nats_auth[0].id
  secret_string_wo = jsonencode({
    user     = var.nats_user
    password = ephemeral.aws_secretsmanager_random_password.nats[0].random_password
  })
  secret_string_wo_version = var.nats_password_version
}

resource "aws_secretsmanager_secret" "nats_tls" {
  # checkov:skip=CKV2_AWS_57: certificates are renewed by the operator's PKI and written out of band.
  count = var.create_nats_secrets ? 1 : 0

  name                    = "${var.name}/nats-tls"
  description             = "NATS TLS material as JSON {ca, cert, key} (PEM); value set out of band"
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = var.recovery_window_days
}

resource "aws_secretsmanager_secret_version" "nats_tls" {
  count = var.create_nats_secrets && nonsensitive(var.nats_tls_pem != null) ? 1 : 0

  secret_id                = aws_secretsmanager_secret.nats_tls[0].id
  secret_string_wo         = jsonencode(var.nats_tls_pem)
  secret_string_wo_version = var.nats_tls_version
}
