# --- Stack ----------------------------------------------------------------------

variable "name" {
  type        = string
  description = "Name of this deployment; prefixes every resource. Lower case letters, digits and dashes."
  default     = "shardline"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,22}[a-z0-9]$", var.name))
    error_message = "name must be 3 to 24 characters of lower case letters, digits and dashes, starting with a letter."
  }
}

variable "region" {
  type        = string
  description = "AWS region to deploy to."
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must look like us-east-1."
  }
}

variable "tags" {
  type        = map(string)
  description = "Extra tags on every resource."
  default     = {}
}

# --- shardline --------------------------------------------------------------------

variable "discord_app" {
  type        = string
  description = "Application name (SHARDLINE_APP): streams are DISCORD_<APP>, so letters, digits and underscores only."

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9_]{0,31}$", var.discord_app))
    error_message = "discord_app must be 1 to 32 letters, digits or underscores, starting with a letter."
  }
}

variable "subject_prefix" {
  type        = string
  description = "NATS subject prefix (SHARDLINE_PREFIX)."
  default     = "discord"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$", var.subject_prefix))
    error_message = "subject_prefix must be NATS subject tokens separated by dots, without wildcards."
  }
}

variable "image_tag" {
  type        = string
  description = "Tag of the shardline image in the stack's ECR repository (tags are immutable: push a new tag per release)."

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag)) && var.image_tag != "latest"
    error_message = "image_tag must be a valid image tag other than \"latest\" (the repository's tags are immutable)."
  }
}

variable "container_image" {
  type        = string
  description = "Full image reference to run instead of <stack repository>:<image_tag> (for example a digest in another registry); null uses the stack's repository."
  default     = null
}

variable "cpu_architecture" {
  type        = string
  description = "CPU architecture of the ECS tasks: X86_64, or ARM64 (Graviton, cheaper; build the image with --platform linux/arm64)."
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "metrics_port" {
  type        = number
  description = "Port where every shardline process serves /metrics, /healthz and /readyz (SHARDLINE_METRICS_ADDR)."
  default     = 9090

  validation {
    condition     = var.metrics_port >= 1024 && var.metrics_port <= 65535
    error_message = "metrics_port must be an unprivileged port (1024-65535); the container runs as a non-root user."
  }
}

variable "log_level" {
  type        = string
  description = "RUST_LOG filter for every shardline process and the bot."
  default     = "info"
}

variable "create_ecr_repository" {
  type        = bool
  description = "Create an ECR repository for the shardline image (set false when container_image points elsewhere)."
  default     = true
}

variable "ecr_force_delete" {
  type        = bool
  description = "Let destroy delete the ECR repository even if it holds images."
  default     = false
}

# --- Network ------------------------------------------------------------------------

variable "vpc_cidr" {
  type        = string
  description = "IPv4 CIDR of the stack's VPC (/17 or larger)."
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0))
    error_message = "vpc_cidr must be a valid IPv4 CIDR block."
  }
}

variable "az_count" {
  type        = number
  description = "Availability zones to use (3 puts each NATS node in its own zone)."
  default     = 3

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 4
    error_message = "az_count must be between 2 and 4."
  }
}

variable "enable_nat_gateway" {
  type        = bool
  description = "NAT for outbound traffic. The gateway must reach Discord, so only turn this off when the VPC has another way out (for example a transit gateway route added outside this stack)."
  default     = true
}

variable "single_nat_gateway" {
  type        = bool
  description = "One NAT gateway shared by all zones (cheaper) rather than one per zone (zone-outage tolerant)."
  default     = true
}

variable "enable_flow_logs" {
  type        = bool
  description = "Send VPC flow logs to CloudWatch Logs."
  default     = true
}

variable "interface_endpoints" {
  type        = set(string)
  description = "AWS services reached through interface VPC endpoints rather than NAT (for example [\"secretsmanager\", \"logs\", \"ecr.api\", \"ecr.dkr\", \"lambda\"]). Each costs an hourly fee per zone."
  default     = []
}

variable "enable_container_insights" {
  type        = bool
  description = "Container Insights on the ECS cluster (needed by the NATS node alarms)."
  default     = true
}

# --- NATS -----------------------------------------------------------------------------

variable "nats_mode" {
  type        = string
  description = "managed: run a JetStream cluster in this stack. external: use an existing NATS (external_nats_url)."
  default     = "managed"

  validation {
    condition     = contains(["managed", "external"], var.nats_mode)
    error_message = "nats_mode must be managed or external."
  }
}

variable "nats_node_count" {
  type        = number
  description = "Servers in the managed cluster (3 or 5)."
  default     = 3

  validation {
    condition     = contains([3, 5], var.nats_node_count)
    error_message = "nats_node_count must be 3 or 5."
  }
}

variable "nats_image" {
  type        = string
  description = "nats-server image for the managed cluster (Alpine variant; it needs a shell and wget for health checks)."
  default     = "public.ecr.aws/docker/library/nats:2.11-alpine"
}

variable "nats_init_image" {
  type        = string
  description = "Small image with a shell that writes the NATS configuration and certificates before the server starts."
  default     = "public.ecr.aws/docker/library/busybox:1.37"
}

variable "nats_cpu" {
  type        = number
  description = "Fargate CPU units per NATS server."
  default     = 1024

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.nats_cpu)
    error_message = "nats_cpu must be a Fargate CPU size (256 to 16384)."
  }
}

variable "nats_memory" {
  type        = number
  description = "Fargate memory per NATS server in MiB."
  default     = 2048

  validation {
    condition     = var.nats_memory >= 512 && var.nats_memory <= 122880
    error_message = "nats_memory must be between 512 and 122880 MiB."
  }
}

variable "nats_max_file_store_gib" {
  type        = number
  description = "JetStream file store limit per server in GiB (the stream's max_bytes must fit)."
  default     = 50

  validation {
    condition     = var.nats_max_file_store_gib >= 1
    error_message = "nats_max_file_store_gib must be at least 1."
  }
}

variable "nats_max_payload_bytes" {
  type        = number
  description = "Largest NATS message; large GUILD_CREATE dispatches exceed the 1 MiB default."
  default     = 8388608

  validation {
    condition     = var.nats_max_payload_bytes >= 1048576 && var.nats_max_payload_bytes <= 67108864
    error_message = "nats_max_payload_bytes must be between 1 MiB and 64 MiB."
  }
}

variable "nats_efs_policy" {
  type        = bool
  description = "Attach a file system policy to the JetStream file system that denies unencrypted NFS and lets only the NATS nodes mount it, each through its own access point."
  default     = true
}

variable "nats_efs_backups" {
  type        = bool
  description = "Daily AWS Backup backups of the JetStream file system (restores are for disasters; R3 covers node loss)."
  default     = true
}

variable "nats_efs_throughput_mode" {
  type        = string
  description = "Throughput mode of the JetStream file system: elastic or bursting."
  default     = "elastic"

  validation {
    condition     = contains(["elastic", "bursting"], var.nats_efs_throughput_mode)
    error_message = "nats_efs_throughput_mode must be elastic or bursting."
  }
}

variable "nats_tls_pem" {
  type = object({
    ca   = string
    cert = string
    key  = string
  })
  description = "Optional PEM CA, certificate and key for the managed cluster, written to Secrets Manager without entering state. Leave null and put the value out of band (recommended; see DEPLOY.md)."
  sensitive   = true
  default     = null
}

variable "stream_replicas" {
  type        = number
  description = "Replicas of the dispatch stream and KV buckets (SHARDLINE_STREAM_REPLICAS): 3 on a cluster."
  default     = 3

  validation {
    condition     = contains([1, 3, 5], var.stream_replicas)
    error_message = "stream_replicas must be 1, 3 or 5."
  }
}

variable "external_nats_url" {
  type        = string
  description = "NATS URL(s), comma-separated, when nats_mode is external."
  default     = null

  validation {
    condition     = var.external_nats_url == null || can(regex("^(nats|tls)://[^,\\s]+(,(nats|tls)://[^,\\s]+)*$", var.external_nats_url))
    error_message = "external_nats_url must be nats:// or tls:// URLs separated by commas."
  }

  validation {
    condition     = var.nats_mode != "external" || var.external_nats_url != null
    error_message = "external_nats_url is required when nats_mode is external."
  }
}

variable "external_nats_credentials_secret_arn" {
  type        = string
  description = "Secrets Manager secret holding the .creds file for the external NATS (SHARDLINE_NATS_CREDS), encrypted with the aws/secretsmanager key; null when it needs none."
  default     = null

  validation {
    condition     = var.external_nats_credentials_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:", var.external_nats_credentials_secret_arn))
    error_message = "external_nats_credentials_secret_arn must be a Secrets Manager secret ARN."
  }
}

variable "external_nats_cidr_blocks" {
  type        = list(string)
  description = "Where the external NATS is, for the tasks' egress rule."
  default     = []

  validation {
    condition     = alltrue([for c in var.external_nats_cidr_blocks : can(cidrhost(c, 0))])
    error_message = "external_nats_cidr_blocks must be IPv4 CIDR blocks."
  }
}

variable "external_nats_port" {
  type        = number
  description = "Client port of the external NATS."
  default     = 4222

  validation {
    condition     = var.external_nats_port >= 1 && var.external_nats_port <= 65535
    error_message = "external_nats_port must be a TCP port."
  }
}

# --- Gateway ----------------------------------------------------------------------

variable "gateway_mode" {
  type        = string
  description = "combined: `shardline gateway` tasks (coordinator and shards in one process). split: separate coordinator and worker services, for large bots."
  default     = "combined"

  validation {
    condition     = contains(["combined", "split"], var.gateway_mode)
    error_message = "gateway_mode must be combined or split."
  }
}

variable "gateway_worker_count" {
  type        = number
  description = "Tasks that run shards (gateway tasks when combined, worker tasks when split)."
  default     = 1

  validation {
    condition     = var.gateway_worker_count >= 1 && var.gateway_worker_count <= 100
    error_message = "gateway_worker_count must be between 1 and 100."
  }
}

variable "gateway_coordinator_count" {
  type        = number
  description = "Coordinator tasks when split (one active, the rest standbys)."
  default     = 2

  validation {
    condition     = var.gateway_coordinator_count >= 1 && var.gateway_coordinator_count <= 3
    error_message = "gateway_coordinator_count must be between 1 and 3."
  }
}

variable "gateway_cpu" {
  type        = number
  description = "Fargate CPU units per gateway task."
  default     = 512

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.gateway_cpu)
    error_message = "gateway_cpu must be a Fargate CPU size (256 to 16384)."
  }
}

variable "gateway_memory" {
  type        = number
  description = "Fargate memory per gateway task in MiB."
  default     = 1024

  validation {
    condition     = var.gateway_memory >= 512 && var.gateway_memory <= 122880
    error_message = "gateway_memory must be between 512 and 122880 MiB."
  }
}

variable "gateway_environment" {
  type        = map(string)
  description = "Extra environment for the gateway processes (for example SHARDLINE_SHARDS or SHARDLINE_INTENTS)."
  default     = {}
}

# --- Bridge -------------------------------------------------------------------------

variable "bridge_cpu" {
  type        = number
  description = "Fargate CPU units per bridge task."
  default     = 512

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.bridge_cpu)
    error_message = "bridge_cpu must be a Fargate CPU size (256 to 16384)."
  }
}

variable "bridge_memory" {
  type        = number
  description = "Fargate memory per bridge task in MiB."
  default     = 1024

  validation {
    condition     = var.bridge_memory >= 512 && var.bridge_memory <= 122880
    error_message = "bridge_memory must be between 512 and 122880 MiB."
  }
}

variable "bridge_min_count" {
  type        = number
  description = "Fewest bridge tasks."
  default     = 1

  validation {
    condition     = var.bridge_min_count >= 1
    error_message = "bridge_min_count must be at least 1."
  }
}

variable "bridge_max_count" {
  type        = number
  description = "Most bridge tasks when consumers lag."
  default     = 4

  validation {
    condition     = var.bridge_max_count >= 1 && var.bridge_max_count <= 100
    error_message = "bridge_max_count must be between 1 and 100."
  }

  validation {
    condition     = var.bridge_max_count >= var.bridge_min_count
    error_message = "bridge_max_count must not be below bridge_min_count."
  }
}

variable "enable_bridge_autoscaling" {
  type        = bool
  description = "Scale the bridge on consumer lag (only with enable_metrics_sidecar, which publishes the lag). Otherwise the bridge runs bridge_min_count tasks."
  default     = true
}

variable "bridge_scale_out_lag" {
  type        = number
  description = "Pending messages above which bridge tasks are added."
  default     = 1000

  validation {
    condition     = var.bridge_scale_out_lag > 0
    error_message = "bridge_scale_out_lag must be positive."
  }
}

variable "bridge_scale_in_lag" {
  type        = number
  description = "Pending messages below which bridge tasks are removed (must be below bridge_scale_out_lag)."
  default     = 100

  validation {
    condition     = var.bridge_scale_in_lag >= 0 && var.bridge_scale_in_lag < var.bridge_scale_out_lag
    error_message = "bridge_scale_in_lag must be at least 0 and below bridge_scale_out_lag."
  }
}

variable "bridge_environment" {
  type        = map(string)
  description = "Extra environment for the bridge (for example SHARDLINE_BRIDGE_CONFIG with the routes as TOML)."
  default     = {}
}

# --- Bot function -------------------------------------------------------------------

variable "bot_zip_path" {
  type        = string
  description = "Path to the bot's bootstrap.zip from `cargo lambda build --release --arm64 --output-format zip`."

  validation {
    condition     = endswith(var.bot_zip_path, ".zip")
    error_message = "bot_zip_path must point to a .zip file."
  }
}

variable "bot_architecture" {
  type        = string
  description = "Architecture the zip was built for: arm64 (cargo lambda build --arm64) or x86_64."
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.bot_architecture)
    error_message = "bot_architecture must be arm64 or x86_64."
  }
}

variable "bot_memory_mb" {
  type        = number
  description = "Memory of the bot function in MB."
  default     = 256

  validation {
    condition     = var.bot_memory_mb >= 128 && var.bot_memory_mb <= 10240
    error_message = "bot_memory_mb must be between 128 and 10240."
  }
}

variable "bot_timeout_seconds" {
  type        = number
  description = "Longest an invocation may run; keep it under the bridge's delivery timeout."
  default     = 10

  validation {
    condition     = var.bot_timeout_seconds >= 1 && var.bot_timeout_seconds <= 900
    error_message = "bot_timeout_seconds must be between 1 and 900."
  }
}

variable "bot_reserved_concurrency" {
  type        = number
  description = "Concurrent executions reserved for the bot; also its ceiling, so a flood cannot starve the account's other functions."
  default     = 10

  validation {
    condition     = var.bot_reserved_concurrency >= 1 && var.bot_reserved_concurrency <= 1000
    error_message = "bot_reserved_concurrency must be between 1 and 1000."
  }
}

variable "bot_in_vpc" {
  type        = bool
  description = "Run the bot in the private subnets (needed to send gateway commands through an in-VPC NATS)."
  default     = true
}

variable "bot_enable_function_url" {
  type        = bool
  description = "Give the bot a Function URL (for HTTPS bridge routes or webhooks)."
  default     = false
}

variable "bot_function_url_auth_type" {
  type        = string
  description = "AWS_IAM (callers sign requests) or NONE (public; requests are then verified by their Standard Webhooks signature)."
  default     = "AWS_IAM"

  validation {
    condition     = contains(["AWS_IAM", "NONE"], var.bot_function_url_auth_type)
    error_message = "bot_function_url_auth_type must be AWS_IAM or NONE."
  }
}

variable "bot_environment" {
  type        = map(string)
  description = "Extra environment for the bot function. No secret values here: they are visible to anyone who can read the function's configuration."
  default     = {}
}

# --- Secrets --------------------------------------------------------------------------

variable "discord_token" {
  type        = string
  description = "Optional bot token, written to Secrets Manager through a write-only argument (never in state). Leave null and set it out of band (recommended; see DEPLOY.md)."
  sensitive   = true
  default     = null
}

variable "secret_value_versions" {
  type = object({
    discord_token       = optional(number, 1)
    webhook_signing_key = optional(number, 1)
    nats_password       = optional(number, 1)
    nats_tls            = optional(number, 1)
  })
  description = "Bump one of these to write that secret again: discord_token and nats_tls re-send the variables of the same name, webhook_signing_key and nats_password generate new values. Write-only arguments are only sent when their version changes."
  default     = {}

  validation {
    condition     = alltrue([for v in values(var.secret_value_versions) : v >= 1 && floor(v) == v])
    error_message = "secret_value_versions must be whole numbers of at least 1."
  }
}

variable "secret_recovery_window_days" {
  type        = number
  description = "Days a deleted secret stays restorable (0 deletes at once)."
  default     = 7

  validation {
    condition     = var.secret_recovery_window_days == 0 || (var.secret_recovery_window_days >= 7 && var.secret_recovery_window_days <= 30)
    error_message = "secret_recovery_window_days must be 0 or between 7 and 30."
  }
}

variable "kms_deletion_window_days" {
  type        = number
  description = "Waiting period before the stack's KMS key is deleted after destroy."
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be between 7 and 30."
  }
}

# --- Observability ----------------------------------------------------------------------

variable "log_retention_days" {
  type        = number
  description = "Days CloudWatch keeps logs."
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ... 3653)."
  }
}

variable "alarm_emails" {
  type        = list(string)
  description = "E-mail addresses that receive alarms."
  default     = []

  validation {
    condition     = alltrue([for e in var.alarm_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", e))])
    error_message = "alarm_emails must be e-mail addresses."
  }
}

variable "enable_metrics_sidecar" {
  type        = bool
  description = "Run an AWS Distro for OpenTelemetry sidecar beside gateway and bridge that turns their Prometheus series into CloudWatch metrics (the lag, dead-letter and shard alarms and bridge scaling need it)."
  default     = true
}

variable "metrics_sidecar_image" {
  type        = string
  description = "AWS Distro for OpenTelemetry collector image."
  default     = "public.ecr.aws/aws-observability/aws-otel-collector:v0.43.3"
}

variable "metrics_namespace" {
  type        = string
  description = "CloudWatch namespace of shardline's metrics."
  default     = "Shardline"

  validation {
    condition     = can(regex("^[A-Za-z0-9._/#:-]{1,255}$", var.metrics_namespace)) && !startswith(var.metrics_namespace, "AWS/")
    error_message = "metrics_namespace must be a valid custom CloudWatch namespace (not AWS/...)."
  }
}

variable "metric_names" {
  type = object({
    consumer_pending  = string
    dead_letter_depth = string
    shards_not_ready  = string
  })
  description = "Prometheus series (as served at /metrics) for consumer lag, dead-letter depth and shards not READY."
  default = {
    consumer_pending  = "shardline_bridge_consumer_pending"
    dead_letter_depth = "shardline_bridge_dead_letter_depth"
    shards_not_ready  = "shardline_gateway_shards_not_ready"
  }
}

variable "consumer_lag_alarm_threshold" {
  type        = number
  description = "Alarm when consumers stay this many messages behind for 10 minutes."
  default     = 10000

  validation {
    condition     = var.consumer_lag_alarm_threshold > 0
    error_message = "consumer_lag_alarm_threshold must be positive."
  }
}

variable "dead_letter_alarm_threshold" {
  type        = number
  description = "Alarm when the dead-letter stream holds more than this many messages (0: any)."
  default     = 0

  validation {
    condition     = var.dead_letter_alarm_threshold >= 0
    error_message = "dead_letter_alarm_threshold must not be negative."
  }
}

variable "shards_not_ready_alarm_minutes" {
  type        = number
  description = "Alarm when shards stay not READY this many minutes."
  default     = 5

  validation {
    condition     = var.shards_not_ready_alarm_minutes >= 1 && var.shards_not_ready_alarm_minutes <= 60
    error_message = "shards_not_ready_alarm_minutes must be between 1 and 60."
  }
}
