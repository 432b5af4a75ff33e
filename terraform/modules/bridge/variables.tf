variable "name" {
  type        = string
  description = "Name prefix; the service is <name>-bridge."
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

variable "cluster_name" {
  type        = string
  description = "ECS cluster name."
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
  description = "Security groups to attach besides the bridge's own (for example the NATS clients group)."
}

variable "environment" {
  type        = map(string)
  description = "Environment for the shardline process."
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
  description = "Log group for the bridge's tasks."
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

variable "target_function_arns" {
  type        = list(string)
  description = "Lambda functions the bridge may invoke."
}

variable "min_count" {
  type        = number
  description = "Fewest bridge tasks."

  validation {
    condition     = var.min_count >= 1
    error_message = "min_count must be at least 1, or nothing delivers."
  }
}

variable "max_count" {
  type        = number
  description = "Most bridge tasks when the consumers lag."
}

variable "enable_autoscaling" {
  type        = bool
  description = "Scale the service between min_count and max_count on consumer lag; when false it runs min_count tasks."
}

variable "lag_metric" {
  type = object({
    namespace = string
    name      = string
    app       = string
  })
  description = "CloudWatch metric of consumer pending messages (published by the metrics sidecar) that drives scaling."
}

variable "scale_out_lag" {
  type        = number
  description = "Pending messages above which a task is added (two above twice this)."
}

variable "scale_in_lag" {
  type        = number
  description = "Pending messages below which a task is removed (after 15 quiet minutes)."
}
