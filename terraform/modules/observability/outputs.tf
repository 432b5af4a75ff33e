output "log_group_names" {
  description = "Log group names keyed like var.log_groups."
  value       = { for k, g in aws_cloudwatch_log_group.this : k => g.name }
}

output "log_group_arns" {
  description = "Log group ARNs (without the :* suffix) keyed like var.log_groups."
  value       = { for k, g in aws_cloudwatch_log_group.this : k => g.arn }
}

output "alarm_topic_arn" {
  description = "SNS topic that every alarm notifies."
  value       = aws_sns_topic.alarms.arn
}

output "alarm_names" {
  description = "Names of the paging alarms."
  value = concat(
    aws_cloudwatch_metric_alarm.consumer_lag[*].alarm_name,
    aws_cloudwatch_metric_alarm.dead_letters[*].alarm_name,
    aws_cloudwatch_metric_alarm.shards_not_ready[*].alarm_name,
    [
      aws_cloudwatch_metric_alarm.function_errors.alarm_name,
      aws_cloudwatch_metric_alarm.function_throttles.alarm_name,
    ],
    [for a in aws_cloudwatch_metric_alarm.nats_node_down : a.alarm_name],
  )
}
