# shardline on AWS: Discord -> gateway (ECS) -> NATS JetStream -> bridge (ECS)
# -> bot (Lambda). The modules below each own one concern; this file only
# names things and wires the modules together.

locals {
  managed_nats = var.nats_mode == "managed"

  function_name = "${var.name}-bot"
  dns_namespace = "${var.name}.internal"

  log_groups = merge(
    {
      gateway = "/shardline/${var.name}/gateway"
      bridge  = "/shardline/${var.name}/bridge"
      metrics = "/shardline/${var.name}/metrics"
      bot     = "/aws/lambda/${local.function_name}"
    },
    local.managed_nats ? { nats = "/shardline/${var.name}/nats" } : {},
    var.enable_flow_logs ? { flow = "/shardline/${var.name}/vpc-flow" } : {},
  )

  image = coalesce(var.container_image, "${one(aws_ecr_repository.shardline[*].repository_url)}:${var.image_tag}")

  nats_url = local.managed_nats ? module.nats[0].client_url : var.external_nats_url

  # How the shardline processes authenticate to NATS.
  nats_secrets = local.managed_nats ? {
    SHARDLINE_NATS_USER     = "${module.secrets.nats_auth_secret_arn}:user::"
    SHARDLINE_NATS_PASSWORD = "${module.secrets.nats_auth_secret_arn}:password::"
    SHARDLINE_NATS_CA_PEM   = "${module.secrets.nats_tls_secret_arn}:ca::"
    } : (var.external_nats_credentials_secret_arn == null ? {} : {
      SHARDLINE_NATS_CREDS = var.external_nats_credentials_secret_arn
  })
  nats_secret_arns = local.managed_nats ? [module.secrets.nats_auth_secret_arn, module.secrets.nats_tls_secret_arn] : compact([var.external_nats_credentials_secret_arn])

  common_environment = {
    SHARDLINE_NATS_URL        = local.nats_url
    SHARDLINE_PREFIX          = var.subject_prefix
    SHARDLINE_APP             = var.discord_app
    SHARDLINE_STREAM_REPLICAS = tostring(var.stream_replicas)
    SHARDLINE_METRICS_ADDR    = "0.0.0.0:${var.metrics_port}"
    SHARDLINE_LOG_FORMAT      = "json"
    RUST_LOG                  = var.log_level
  }

  client_security_groups = compact([
    local.managed_nats ? module.nats[0].client_security_group_id : null,
    one(aws_security_group.external_nats[*].id),
  ])

  metrics_sidecar = var.enable_metrics_sidecar ? {
    image          = var.metrics_sidecar_image
    namespace      = var.metrics_namespace
    log_group_name = module.observability.log_group_names["metrics"]
    log_group_arn  = module.observability.log_group_arns["metrics"]
    app            = var.discord_app
    metric_names   = values(var.metric_names)
  } : null
}

# --- Shared foundations -----------------------------------------------------------

module "secrets" {
  source = "./modules/secrets"

  name                     = var.name
  recovery_window_days     = var.secret_recovery_window_days
  kms_deletion_window_days = var.kms_deletion_window_days
  discord_token            = var.discord_token
  create_nats_secrets      = local.managed_nats
  nats_tls_pem             = var.nats_tls_pem
  discord_token_version    = var.secret_value_versions.discord_token
  webhook_secret_version   = var.secret_value_versions.webhook_signing_key
  nats_password_version    = var.secret_value_versions.nats_password
  nats_tls_version         = var.secret_value_versions.nats_tls
}

module "observability" {
  source = "./modules/observability"

  name                      = var.name
  log_groups                = local.log_groups
  retention_days            = var.log_retention_days
  kms_key_arn               = module.secrets.kms_key_arn
  alarm_emails              = var.alarm_emails
  metrics_namespace         = var.metrics_namespace
  app                       = var.discord_app
  metric_names              = var.metric_names
  shardline_metrics_enabled = var.enable_metrics_sidecar
  consumer_lag_threshold    = var.consumer_lag_alarm_threshold
  dead_letter_threshold     = var.dead_letter_alarm_threshold
  shards_not_ready_minutes  = var.shards_not_ready_alarm_minutes
  function_name             = local.function_name
  cluster_name              = aws_ecs_cluster.this.name
  nats_service_names        = local.managed_nats && var.enable_container_insights ? module.nats[0].service_names : {}
}

module "network" {
  source = "./modules/network"

  name                = var.name
  cidr_block          = var.vpc_cidr
  az_count            = var.az_count
  enable_nat_gateway  = var.enable_nat_gateway
  single_nat_gateway  = var.single_nat_gateway
  enable_flow_logs    = var.enable_flow_logs
  flow_log_group_arn  = var.enable_flow_logs ? module.observability.log_group_arns["flow"] : null
  interface_endpoints = var.interface_endpoints
}

resource "aws_ecr_repository" "shardline" {
  count = var.create_ecr_repository ? 1 : 0

  name                 = var.name
  image_tag_mutability = "IMMUTABLE"
  force_delete         = var.ecr_force_delete

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = module.secrets.kms_key_arn
  }
}

resource "aws_ecr_lifecycle_policy" "shardline" {
  count = var.create_ecr_repository ? 1 : 0

  repository = aws_ecr_repository.shardline[0].name
  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Drop untagged layers after a week"
        selection    = { tagStatus = "untagged", countType = "sinceImagePushed", countUnit = "days", countNumber = 7 }
        action       = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "Keep the 30 newest tagged images"
        selection    = { tagStatus = "any", countType = "imageCountMoreThan", countNumber = 30 }
        action       = { type = "expire" }
      },
    ]
  })
}

resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = var.enable_container_insights ? "enabled" : "disabled"
  }
}

resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = ["FARGATE"]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
  }
}

# Egress to an external NATS (nats_mode = external).
resource "aws_security_group" "external_nats" {
  # checkov:skip=CKV2_AWS_5: attached to the gateway, bridge and bot through module inputs, which the graph check cannot follow.
  count = local.managed_nats || length(var.external_nats_cidr_blocks) == 0 ? 0 : 1

  name        = "${var.name}-external-nats-clients"
  description = "Outbound to the external NATS"
  vpc_id      = module.network.vpc_id

  egress {
    description = "NATS client connections"
    from_port   = var.external_nats_port
    to_port     = var.external_nats_port
    protocol    = "tcp"
    cidr_blocks = var.external_nats_cidr_blocks
  }

  tags = { Name = "${var.name}-external-nats-clients" }
}

# --- Event path -------------------------------------------------------------------

module "nats" {
  source = "./modules/nats"
  count  = local.managed_nats ? 1 : 0

  name                      = var.name
  vpc_id                    = module.network.vpc_id
  subnet_ids                = module.network.private_subnet_ids
  cluster_arn               = aws_ecs_cluster.this.arn
  node_count                = var.nats_node_count
  image                     = var.nats_image
  init_image                = var.nats_init_image
  cpu                       = var.nats_cpu
  memory                    = var.nats_memory
  cpu_architecture          = var.cpu_architecture
  max_file_store_gib        = var.nats_max_file_store_gib
  max_payload_bytes         = var.nats_max_payload_bytes
  auth_secret_arn           = module.secrets.nats_auth_secret_arn
  tls_secret_arn            = module.secrets.nats_tls_secret_arn
  kms_key_arn               = module.secrets.kms_key_arn
  log_group_name            = module.observability.log_group_names["nats"]
  dns_namespace             = local.dns_namespace
  efs_throughput_mode       = var.nats_efs_throughput_mode
  enable_backups            = var.nats_efs_backups
  enable_file_system_policy = var.nats_efs_policy
}

module "gateway" {
  source = "./modules/gateway"

  name                     = var.name
  mode                     = var.gateway_mode
  worker_count             = var.gateway_worker_count
  coordinator_count        = var.gateway_coordinator_count
  cpu                      = var.gateway_cpu
  memory                   = var.gateway_memory
  image                    = local.image
  cpu_architecture         = var.cpu_architecture
  cluster_arn              = aws_ecs_cluster.this.arn
  vpc_id                   = module.network.vpc_id
  subnet_ids               = module.network.private_subnet_ids
  extra_security_group_ids = local.client_security_groups
  environment              = merge(local.common_environment, var.gateway_environment)
  secrets                  = merge(local.nats_secrets, { DISCORD_TOKEN = module.secrets.discord_token_secret_arn })
  secret_arns              = concat(local.nats_secret_arns, [module.secrets.discord_token_secret_arn])
  kms_key_arn              = module.secrets.kms_key_arn
  log_group_name           = module.observability.log_group_names["gateway"]
  metrics_port             = var.metrics_port
  metrics_sidecar          = local.metrics_sidecar
}

module "bot" {
  source = "./modules/bot"

  function_name        = local.function_name
  zip_path             = pathexpand(var.bot_zip_path)
  architecture         = var.bot_architecture
  memory_mb            = var.bot_memory_mb
  timeout_seconds      = var.bot_timeout_seconds
  reserved_concurrency = var.bot_reserved_concurrency
  kms_key_arn          = module.secrets.kms_key_arn
  log_group_name       = module.observability.log_group_names["bot"]
  log_group_arn        = module.observability.log_group_arns["bot"]
  secret_arns = concat(
    [module.secrets.discord_token_secret_arn, module.secrets.webhook_signing_secret_arn],
    local.nats_secret_arns,
  )
  environment = merge(
    {
      SHARDLINE_NATS_URL                 = local.nats_url
      SHARDLINE_PREFIX                   = var.subject_prefix
      SHARDLINE_APP                      = var.discord_app
      SHARDLINE_DISCORD_TOKEN_SECRET_ARN = module.secrets.discord_token_secret_arn
      SHARDLINE_WEBHOOK_SECRET_ARN       = module.secrets.webhook_signing_secret_arn
      RUST_LOG                           = var.log_level
    },
    local.managed_nats ? {
      SHARDLINE_NATS_AUTH_SECRET_ARN = module.secrets.nats_auth_secret_arn
      SHARDLINE_NATS_TLS_SECRET_ARN  = module.secrets.nats_tls_secret_arn
    } : {},
    !local.managed_nats && var.external_nats_credentials_secret_arn != null ? {
      SHARDLINE_NATS_CREDS_SECRET_ARN = var.external_nats_credentials_secret_arn
    } : {},
    var.bot_environment,
  )
  vpc = var.bot_in_vpc ? {
    vpc_id             = module.network.vpc_id
    subnet_ids         = module.network.private_subnet_ids
    security_group_ids = local.client_security_groups
  } : null
  enable_function_url    = var.bot_enable_function_url
  function_url_auth_type = var.bot_function_url_auth_type
}

module "bridge" {
  source = "./modules/bridge"

  name                     = var.name
  cpu                      = var.bridge_cpu
  memory                   = var.bridge_memory
  image                    = local.image
  cpu_architecture         = var.cpu_architecture
  cluster_arn              = aws_ecs_cluster.this.arn
  cluster_name             = aws_ecs_cluster.this.name
  vpc_id                   = module.network.vpc_id
  subnet_ids               = module.network.private_subnet_ids
  extra_security_group_ids = local.client_security_groups
  environment = merge(local.common_environment, {
    SHARDLINE_BRIDGE_LAMBDA_FUNCTION = module.bot.function_arn
  }, var.bridge_environment)
  secrets              = merge(local.nats_secrets, { SHARDLINE_WEBHOOK_SECRETS = module.secrets.webhook_signing_secret_arn })
  secret_arns          = concat(local.nats_secret_arns, [module.secrets.webhook_signing_secret_arn])
  kms_key_arn          = module.secrets.kms_key_arn
  log_group_name       = module.observability.log_group_names["bridge"]
  metrics_port         = var.metrics_port
  metrics_sidecar      = local.metrics_sidecar
  target_function_arns = [module.bot.function_arn]
  enable_autoscaling   = var.enable_bridge_autoscaling && var.enable_metrics_sidecar
  min_count            = var.bridge_min_count
  max_count            = var.bridge_max_count
  lag_metric = {
    namespace = var.metrics_namespace
    name      = var.metric_names.consumer_pending
    app       = var.discord_app
  }
  scale_out_lag = var.bridge_scale_out_lag
  scale_in_lag  = var.bridge_scale_in_lag
}
