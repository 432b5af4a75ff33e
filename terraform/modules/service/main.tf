# One Fargate service running the shardline image: roles, task definition and
# service. Gateway and bridge both use it; only what differs comes in.

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  container_name = "shardline"

  shardline_container = {
    name                   = local.container_name
    image                  = var.image
    essential              = true
    command                = var.command
    user                   = "10001:10001"
    readonlyRootFilesystem = true
    stopTimeout            = var.stop_timeout_seconds
    environment            = [for k in sort(keys(var.environment)) : { name = k, value = var.environment[k] }]
    secrets                = [for k in sort(keys(var.secrets)) : { name = k, valueFrom = var.secrets[k] }]
    portMappings           = [{ containerPort = var.metrics_port, protocol = "tcp", name = "metrics" }]
    linuxParameters        = { initProcessEnabled = true }
    mountPoints            = [{ sourceVolume = "tmp", containerPath = "/tmp" }]
    healthCheck = {
      command     = ["CMD", "curl", "--fail", "--silent", "--max-time", "2", "http://127.0.0.1:${var.metrics_port}/healthz"]
      interval    = 15
      timeout     = 5
      retries     = 3
      startPeriod = 30
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = var.log_group_name
        awslogs-region        = data.aws_region.current.name
        awslogs-stream-prefix = var.name
        mode                  = "non-blocking"
        max-buffer-size       = "8m"
      }
    }
  }

  # AWS Distro for OpenTelemetry: Prometheus scrape of /metrics, exported as
  # CloudWatch embedded-metric-format logs, so alarms and scaling policies can
  # use shardline's own series without the binary knowing about CloudWatch.
  sidecar_config = var.metrics_sidecar == null ? null : yamlencode({
    receivers = {
      prometheus = {
        config = {
          scrape_configs = [{
            job_name        = var.name
            scrape_interval = "15s"
            metrics_path    = "/metrics"
            static_configs  = [{ targets = ["127.0.0.1:${var.metrics_port}"], labels = { App = var.metrics_sidecar.app } }]
          }]
        }
      }
    }
    exporters = {
      awsemf = {
        namespace               = var.metrics_sidecar.namespace
        log_group_name          = var.metrics_sidecar.log_group_name
        log_stream_name         = "${var.name}/{TaskId}"
        dimension_rollup_option = "NoDimensionRollup"
        metric_declarations = [{
          dimensions = [["App"]]
          # "$$" is a literal "$" to the collector's config expansion (and still
          # an end anchor in the regular expression if it is not expanded).
          metric_name_selectors = [for m in var.metrics_sidecar.metric_names : "^${m}$$"]
        }]
      }
    }
    service = {
      pipelines = {
        metrics = { receivers = ["prometheus"], exporters = ["awsemf"] }
      }
    }
  })

  sidecar_container = var.metrics_sidecar == null ? [] : [{
    name                   = "metrics"
    image                  = var.metrics_sidecar.image
    essential              = false
    readonlyRootFilesystem = true
    mountPoints            = [{ sourceVolume = "tmp", containerPath = "/tmp" }]
    environment            = [{ name = "AOT_CONFIG_CONTENT", value = local.sidecar_config }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = var.log_group_name
        awslogs-region        = data.aws_region.current.name
        awslogs-stream-prefix = "metrics"
      }
    }
  }]
}

# --- Network ------------------------------------------------------------------

# No inbound rules: nothing connects to these tasks. Outbound HTTPS reaches
# Discord, Lambda, HTTPS targets and AWS APIs; NATS comes from the extra groups.
resource "aws_security_group" "this" {
  name        = var.name
  description = "${var.name} tasks: outbound HTTPS only"
  vpc_id      = var.vpc_id

  tags = { Name = var.name }
}

resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.this.id
  description       = "Discord, Lambda, HTTPS targets and AWS APIs"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

# --- Roles --------------------------------------------------------------------

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${data.aws_partition.current.partition}:ecs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:*"]
    }
  }
}

# The execution role is used by ECS itself: pull the image, write logs, read
# the secrets into the environment. Nothing else.
data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "PullImage"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid       = "PullImageLayers"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"]
    resources = ["arn:${data.aws_partition.current.partition}:ecr:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:repository/*"]
  }

  statement {
    sid       = "WriteContainerLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:log-group:${var.log_group_name}:*"]
  }

  dynamic "statement" {
    for_each = length(var.secret_arns) > 0 ? [1] : []

    content {
      sid       = "ReadStartupSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = var.secret_arns
    }
  }

  dynamic "statement" {
    for_each = length(var.secret_arns) > 0 ? [1] : []

    content {
      sid       = "DecryptStartupSecrets"
      actions   = ["kms:Decrypt"]
      resources = [var.kms_key_arn]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${data.aws_region.current.name}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy" "execution" {
  name   = "start-task"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# The task role is what the processes in the task may call.
resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy" "task" {
  count = var.attach_task_policy ? 1 : 0

  name   = "shardline"
  role   = aws_iam_role.task.id
  policy = var.task_policy_json
}

data "aws_iam_policy_document" "sidecar" {
  count = var.metrics_sidecar == null ? 0 : 1

  statement {
    sid       = "WriteEmbeddedMetrics"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${var.metrics_sidecar.log_group_arn}:*"]
  }
}

resource "aws_iam_role_policy" "sidecar" {
  count = var.metrics_sidecar == null ? 0 : 1

  name   = "metrics-sidecar"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.sidecar[0].json
}

# --- Task definition and service -------------------------------------------------

resource "aws_ecs_task_definition" "this" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  container_definitions    = jsonencode(concat([local.shardline_container], local.sidecar_container))

  # Scratch space: the root file systems are read-only.
  volume {
    name = "tmp"
  }

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }
}

resource "aws_ecs_service" "this" {
  count = var.ignore_desired_count_changes ? 0 : 1

  name                    = var.name
  cluster                 = var.cluster_arn
  task_definition         = aws_ecs_task_definition.this.arn
  desired_count           = var.desired_count
  launch_type             = "FARGATE"
  platform_version        = "LATEST"
  propagate_tags          = "SERVICE"
  enable_ecs_managed_tags = true
  wait_for_steady_state   = false

  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = concat([aws_security_group.this.id], var.extra_security_group_ids)
    assign_public_ip = false
  }
}

# Same service, with desired_count owned by Application Auto Scaling.
resource "aws_ecs_service" "autoscaled" {
  count = var.ignore_desired_count_changes ? 1 : 0

  name                    = var.name
  cluster                 = var.cluster_arn
  task_definition         = aws_ecs_task_definition.this.arn
  desired_count           = var.desired_count
  launch_type             = "FARGATE"
  platform_version        = "LATEST"
  propagate_tags          = "SERVICE"
  enable_ecs_managed_tags = true
  wait_for_steady_state   = false

  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = concat([aws_security_group.this.id], var.extra_security_group_ids)
    assign_public_ip = false
  }

  lifecycle {
    ignore_changes = [desired_count]
  }
}
