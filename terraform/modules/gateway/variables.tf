variable "name" {
  type        = string
  description = "Name prefix; services are <name>-gateway, or <name>-coordinator and <name>-worker."
}

variable "mode" {
  type        = string
  description = "combined: every task runs `shardline gateway` (coordinator and shards in one process; small bots). split: `shardline coordinator` and `shardline worker` run as separate services (large bots)."

  validation {
    condition     = contains(["combined", "split"], var.mode)
    error_message = "mode must be combined or split."
  }
}

variable "worker_count" {
  type        = number
  description = "Tasks running shards: `gateway` tasks in combined mode, `worker` tasks in split mode."

  validation {
    condition     = var.worker_count >= 1 && var.worker_count <= 100
    error_message = "worker_count must be between 1 and 100."
  }
}

variable "coordinator_count" {
  type        = number
  description = "Coordinator tasks in split mode: one is active, the rest are standbys."

  validation {
    condition     = var.coordinator_count >= 1 && var.coordinator_count <= 3
    error_message = "coordinator_count must be between 1 and 3."
  }
}

variable "cpu" {
  type        = number
  description = "Fargate CPU units per task."
}

variable "memory" {
  type        = number
  description = "Fargate memory per task in MiB."
}

variable "image" {
  type        = string
  description = "Container image of the shardline binary."
}

variable "cpu_architecture" {
  type        = string
  description = "X86_64 or ARM64; must match the image."
}

variable "cluster_arn" {
  type        = string
  description = "ECS cluster ARN."
}

variable "vpc_id" {
  type        = string
  description = "VPC of the tasks."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets for the tasks."
}

variable "extra_security_group_ids" {
  type        = list(string)
  description = "Security groups to attach besides the gateway's own (for example the NATS clients group)."
}

variable "environment" {
  type        = map(string)
  description = "Environment for the shardline process (NATS URL, prefix, app, ...)."
}

variable "secrets" {
  type        = map(string)
  description = "Environment variables filled from Secrets Manager (name => secret ARN with optional JSON key)."
}

variable "secret_arns" {
  type        = list(string)
  description = "Secret ARNs the tasks read at start."
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key of the secrets."
}

variable "log_group_name" {
  type        = string
  description = "Log group for the gateway's tasks."
}

variable "metrics_port" {
  type        = number
  description = "Port of /metrics, /healthz and /readyz."
}

variable "metrics_sidecar" {
  type = object({
    image          = string
    namespace      = string
    log_group_name = string
    log_group_arn  = string
    app            = string
    metric_names   = list(string)
  })
  description = "Metrics sidecar settings (see the service module); null for none."
}
