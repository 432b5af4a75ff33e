variable "name" {
  type        = string
  description = "Full name of the ECS service, task family, IAM roles and container."
}

variable "cluster_arn" {
  type        = string
  description = "ARN of the ECS cluster to run in."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets for the tasks (no public IPs are assigned)."
}

variable "vpc_id" {
  type        = string
  description = "VPC of the tasks (for the service's own security group)."
}

variable "extra_security_group_ids" {
  type        = list(string)
  description = "Security groups attached besides the service's own, which allows only outbound HTTPS (for example the NATS clients group)."
}

variable "image" {
  type        = string
  description = "Container image of the shardline binary (repository URI with tag or digest)."
}

variable "command" {
  type        = list(string)
  description = "Arguments to the shardline binary, for example [\"bridge\"]."
}

variable "cpu" {
  type        = number
  description = "Fargate task CPU units."
}

variable "memory" {
  type        = number
  description = "Fargate task memory in MiB."
}

variable "cpu_architecture" {
  type        = string
  description = "X86_64 or ARM64; must match the image."
}

variable "desired_count" {
  type        = number
  description = "Initial number of tasks (autoscaling may change it later)."
}

variable "ignore_desired_count_changes" {
  type        = bool
  description = "Leave desired_count to Application Auto Scaling after creation."
  default     = false
}

variable "environment" {
  type        = map(string)
  description = "Plain environment variables for the shardline container."
}

variable "secrets" {
  type        = map(string)
  description = "Environment variables filled from Secrets Manager at start: name => secret ARN (optionally with \":json-key::\" suffix)."
}

variable "secret_arns" {
  type        = list(string)
  description = "Secret ARNs (without JSON key suffixes) that the execution role may read."
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key that encrypts the secrets."
}

variable "log_group_name" {
  type        = string
  description = "CloudWatch log group for the containers' output."
}

variable "metrics_port" {
  type        = number
  description = "Port of /metrics, /healthz and /readyz inside the task."
}

variable "task_policy_json" {
  type        = string
  description = "IAM policy (JSON) for what the shardline process itself calls in AWS (used when attach_task_policy is true)."
  default     = null
}

variable "attach_task_policy" {
  type        = bool
  description = "Attach task_policy_json to the task role (a plain flag, because the policy itself may only be known at apply time)."
  default     = false
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
  description = "When set, an AWS Distro for OpenTelemetry sidecar scrapes /metrics and publishes the named series to CloudWatch (embedded metric format) with an App dimension; null for none."
  default     = null
}

variable "stop_timeout_seconds" {
  type        = number
  description = "Seconds between SIGTERM and SIGKILL, so the process can drain (Fargate allows up to 120)."
  default     = 110
}
