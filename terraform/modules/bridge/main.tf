# The bridge: durable JetStream consumers delivering to the bot function.
# It scales out on consumer lag: two alarms on the pending-messages metric
# drive step scaling of the service's desired count.

locals {
  service_name = "${var.name}-bridge"
}

data "aws_iam_policy_document" "task" {
  statement {
    sid       = "InvokeBotFunctions"
    actions   = ["lambda:InvokeFunction"]
    resources = flatten([for arn in var.target_function_arns : [arn, "${arn}:*"]])
  }
}

module "service" {
  source = "../service"

  name                         = local.service_name
  cluster_arn                  = var.cluster_arn
  subnet_ids                   = var.subnet_ids
  vpc_id                       = var.vpc_id
  extra_security_group_ids     = var.extra_security_group_ids
  image                        = var.image
  command                      = ["bridge"]
  cpu                          = var.cpu
  memory                       = var.memory
  cpu_architecture             = var.cpu_architecture
  desired_count                = var.min_count
  ignore_desired_count_changes = var.enable_autoscaling
  environment                  = var.environment
  secrets                      = var.secrets
  secret_arns                  = var.secret_arns
  kms_key_arn                  = var.kms_key_arn
  log_group_name               = var.log_group_name
  metrics_port                 = var.metrics_port
  metrics_sidecar              = var.metrics_sidecar
  attach_task_policy           = true
  task_policy_json             = data.aws_iam_policy_document.task.json
}

# --- Scaling on consumer lag ---------------------------------------------------

resource "aws_appautoscaling_target" "this" {
  count = var.enable_autoscaling ? 1 : 0

  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = "service/${var.cluster_name}/${module.service.service_name}"
  min_capacity       = var.min_count
  max_capacity       = var.max_count
}

resource "aws_appautoscaling_policy" "scale_out" {
  count = var.enable_autoscaling ? 1 : 0

  name               = "${local.service_name}-lag-scale-out"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.this[0].service_namespace
  scalable_dimension = aws_appautoscaling_target.this[0].scalable_dimension
  resource_id        = aws_appautoscaling_target.this[0].resource_id

  step_scaling_policy_configuration {
    adjustment_type         = "ChangeInCapacity"
    cooldown                = 60
    metric_aggregation_type = "Maximum"

    # Breach of 0 .. scale_out_lag above the threshold: one more task.
    step_adjustment {
      metric_interval_lower_bound = 0
      metric_interval_upper_bound = var.scale_out_lag
      scaling_adjustment          = 1
    }

    # Further behind than that: two more.
    step_adjustment {
      metric_interval_lower_bound = var.scale_out_lag
      scaling_adjustment          = 2
    }
  }
}

resource "aws_appautoscaling_policy" "scale_in" {
  count = var.enable_autoscaling ? 1 : 0

  name               = "${local.service_name}-lag-scale-in"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.this[0].service_namespace
  scalable_dimension = aws_appautoscaling_target.this[0].scalable_dimension
  resource_id        = aws_appautoscaling_target.this[0].resource_id

  step_scaling_policy_configuration {
    adjustment_type         = "ChangeInCapacity"
    cooldown                = 300
    metric_aggregation_type = "Maximum"

    step_adjustment {
      metric_interval_upper_bound = 0
      scaling_adjustment          = -1
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "lag_high" {
  count = var.enable_autoscaling ? 1 : 0

  alarm_name          = "${local.service_name}-lag-high"
  alarm_description   = "Scaling trigger: bridge consumers are behind; adds bridge tasks."
  namespace           = var.lag_metric.namespace
  metric_name         = var.lag_metric.name
  dimensions          = { App = var.lag_metric.app }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.scale_out_lag
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_appautoscaling_policy.scale_out[0].arn]
}

resource "aws_cloudwatch_metric_alarm" "lag_low" {
  count = var.enable_autoscaling ? 1 : 0

  alarm_name          = "${local.service_name}-lag-low"
  alarm_description   = "Scaling trigger: bridge consumers have caught up; removes bridge tasks."
  namespace           = var.lag_metric.namespace
  metric_name         = var.lag_metric.name
  dimensions          = { App = var.lag_metric.app }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 3
  comparison_operator = "LessThanThreshold"
  threshold           = var.scale_in_lag
  treat_missing_data  = "ignore"
  alarm_actions       = [aws_appautoscaling_policy.scale_in[0].arn]
}
