variable "function_name" {
  type        = string
  description = "Name of the Lambda function."
}

variable "zip_path" {
  type        = string
  description = "Path to the bootstrap.zip that `cargo lambda build --release --output-format zip` produced."
}

variable "architecture" {
  type        = string
  description = "arm64 or x86_64; must match the zip (cargo lambda build --arm64 or --x86-64)."
}

variable "memory_mb" {
  type        = number
  description = "Memory of the function in MB (CPU scales with it)."
}

variable "timeout_seconds" {
  type        = number
  description = "Longest an invocation may run."
}

variable "reserved_concurrency" {
  type        = number
  description = "Concurrent executions reserved for (and capping) the function."
}

variable "environment" {
  type        = map(string)
  description = "Environment variables of the function (no secret values: secrets are passed as ARNs and read at cold start)."
}

variable "secret_arns" {
  type        = list(string)
  description = "Secrets the function may read."
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key for the environment and the secrets."
}

variable "log_group_name" {
  type        = string
  description = "Log group of the function (created by the observability module)."
}

variable "log_group_arn" {
  type        = string
  description = "ARN of that log group."
}

variable "vpc" {
  type = object({
    subnet_ids         = list(string)
    security_group_ids = list(string)
    vpc_id             = string
  })
  description = "Run the function in these private subnets, with these security groups besides its own (needed to publish gateway commands to an in-VPC NATS); null runs it outside a VPC."
}

variable "enable_function_url" {
  type        = bool
  description = "Create a Function URL (for HTTPS routes of the bridge or webhooks)."
}

variable "function_url_auth_type" {
  type        = string
  description = "AWS_IAM (callers sign with SigV4) or NONE (public; the bot then checks the Standard Webhooks signature on every request)."
}
