variable "name" {
  type        = string
  description = "Name prefix for alarms and the alarm topic."
}

variable "log_groups" {
  type        = map(string)
  description = "Log groups to create: key => log group name."
}

variable "retention_days" {
  type        = number
  description = "Days CloudWatch keeps log events."

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.retention_days)
    error_message = "retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ... 3653)."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key for the log groups and the alarm topic."
}

variable "alarm_emails" {
  type        = list(string)
  description = "Addresses subscribed to the alarm topic (each must confirm by e-mail)."
}

variable "metrics_namespace" {
  type        = string
  description = "CloudWatch namespace of shardline's own metrics."
}

variable "app" {
  type        = string
  description = "Value of the App dimension on shardline's metrics."
}

variable "metric_names" {
  type = object({
    consumer_pending  = string
    dead_letter_depth = string
    shards_not_ready  = string
  })
  description = "Metric names of consumer lag, dead-letter depth and shards not READY."
}

variable "shardline_metrics_enabled" {
  type        = bool
  description = "Whether shardline's own series reach CloudWatch (the metrics sidecar runs); without them the lag, dead-letter and shard alarms are not created."
}

variable "consumer_lag_threshold" {
  type        = number
  description = "Alarm when the bridge's consumers are more than this many messages behind for 10 minutes."
}

variable "dead_letter_threshold" {
  type        = number
  description = "Alarm when the dead-letter stream holds more than this many messages."
}

variable "shards_not_ready_minutes" {
  type        = number
  description = "Alarm when any shard has not been READY for this many consecutive minutes."
}

variable "function_name" {
  type        = string
  description = "Bot function whose errors and throttles raise alarms."
}

variable "cluster_name" {
  type        = string
  description = "ECS cluster name (for the NATS node alarms; needs Container Insights)."
}

variable "nats_service_names" {
  type        = map(string)
  description = "ECS services of the NATS nodes that must each run one task; empty for an external NATS."
}
