# Observability: every log group (encrypted, with retention), the alarm topic,
# and the alarms an operator is paged for.

resource "aws_cloudwatch_log_group" "this" {
  # checkov:skip=CKV_AWS_338: retention is the operator's choice (log_retention_days); the 30-day default suits gateway debugging and cost, set 365 or more where policy requires.
  for_each = var.log_groups

  name              = each.value
  retention_in_days = var.retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = var.kms_key_arn
}

resource "aws_sns_topic_subscription" "email" {
  for_each = toset(var.alarm_emails)

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

locals {
  dimensions    = { App = var.app }
  alarm_actions = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "consumer_lag" {
  count = var.shardline_metrics_enabled ? 1 : 0

  alarm_name          = "${var.name}-consumer-lag"
  alarm_description   = "Bridge consumers are more than ${var.consumer_lag_threshold} messages behind for 10 minutes, even after scaling out. Check the bot function's errors and throttles, and the bridge logs."
  namespace           = var.metrics_namespace
  metric_name         = var.metric_names.consumer_pending
  dimensions          = local.dimensions
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 10
  datapoints_to_alarm = 10
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.consumer_lag_threshold
  treat_missing_data  = "missing"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  count = var.shardline_metrics_enabled ? 1 : 0

  alarm_name          = "${var.name}-dead-letters"
  alarm_description   = "Events were dead-lettered. Inspect them with `shardline dlq list` and redrive after fixing the cause."
  namespace           = var.metrics_namespace
  metric_name         = var.metric_names.dead_letter_depth
  dimensions          = local.dimensions
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.dead_letter_threshold
  treat_missing_data  = "missing"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "shards_not_ready" {
  count = var.shardline_metrics_enabled ? 1 : 0

  alarm_name          = "${var.name}-shards-not-ready"
  alarm_description   = "Some shards have not been READY for ${var.shards_not_ready_minutes} minutes (or the gateway stopped reporting). Check `shardline ctl status` and the gateway logs."
  namespace           = var.metrics_namespace
  metric_name         = var.metric_names.shards_not_ready
  dimensions          = local.dimensions
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = var.shards_not_ready_minutes
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "breaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "function_errors" {
  alarm_name          = "${var.name}-bot-errors"
  alarm_description   = "The bot function failed whole invocations (not single records) for 5 minutes."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = var.function_name }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 5
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "function_throttles" {
  alarm_name          = "${var.name}-bot-throttles"
  alarm_description   = "The bot function is throttled: its reserved concurrency is too low for the bridge's concurrency."
  namespace           = "AWS/Lambda"
  metric_name         = "Throttles"
  dimensions          = { FunctionName = var.function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "nats_node_down" {
  for_each = var.nats_service_names

  alarm_name          = "${var.name}-${each.key}-down"
  alarm_description   = "NATS node ${each.key} has no running task; the cluster has lost a replica of every stream."
  namespace           = "ECS/ContainerInsights"
  metric_name         = "RunningTaskCount"
  dimensions          = { ClusterName = var.cluster_name, ServiceName = each.value }
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 3
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  treat_missing_data  = "breaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}
