# The bot: the Lambda function built by `cargo lambda build`, with a role that
# can write its logs and traces and read its own secrets, nothing more.

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "this" {
  name               = "${var.function_name}-function"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

data "aws_iam_policy_document" "this" {
  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${var.log_group_arn}:*"]
  }

  statement {
    sid       = "ReadOwnSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = var.secret_arns
  }

  statement {
    sid       = "DecryptOwnSecrets"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${data.aws_region.current.name}.amazonaws.com"]
    }
  }

  # X-Ray has no resource-level permissions.
  statement {
    sid       = "WriteTraces"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }

  # Lambda manages the function's network interfaces with the function's role.
  # Describe has no resource-level permissions; create and delete are limited
  # to this account and region.
  dynamic "statement" {
    for_each = var.vpc == null ? [] : [1]

    content {
      sid       = "DescribeNetworkInterfaces"
      actions   = ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = var.vpc == null ? [] : [1]

    content {
      sid = "ManageNetworkInterfacesInAccount"
      actions = [
        "ec2:CreateNetworkInterface",
        "ec2:DeleteNetworkInterface",
        "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses",
      ]
      resources = ["arn:${data.aws_partition.current.partition}:ec2:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:*"]
    }
  }
}

resource "aws_iam_role_policy" "this" {
  name   = "bot"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}

resource "aws_security_group" "this" {
  count = var.vpc == null ? 0 : 1

  name        = "${var.function_name}-function"
  description = "shardline bot function: outbound HTTPS to Discord and AWS only"
  vpc_id      = var.vpc.vpc_id

  tags = { Name = "${var.function_name}-function" }
}

resource "aws_vpc_security_group_egress_rule" "https" {
  count = var.vpc == null ? 0 : 1

  security_group_id = aws_security_group.this[0].id
  description       = "Discord REST and AWS APIs"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_lambda_function" "this" {
  # checkov:skip=CKV_AWS_116: the bridge invokes the function synchronously and dead-letters failures in JetStream; a Lambda DLQ only applies to asynchronous invocations.
  # checkov:skip=CKV_AWS_272: cargo lambda builds unsigned zips; integrity comes from source_code_hash in the plan.
  function_name                  = var.function_name
  description                    = "shardline bot handlers"
  role                           = aws_iam_role.this.arn
  runtime                        = "provided.al2023"
  handler                        = "bootstrap"
  architectures                  = [var.architecture]
  filename                       = var.zip_path
  source_code_hash               = filebase64sha256(var.zip_path)
  memory_size                    = var.memory_mb
  timeout                        = var.timeout_seconds
  reserved_concurrent_executions = var.reserved_concurrency
  kms_key_arn                    = var.kms_key_arn

  environment {
    variables = var.environment
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "Text"
    log_group  = var.log_group_name
  }

  dynamic "vpc_config" {
    for_each = var.vpc == null ? [] : [var.vpc]

    content {
      subnet_ids         = vpc_config.value.subnet_ids
      security_group_ids = concat(aws_security_group.this[*].id, vpc_config.value.security_group_ids)
    }
  }

  depends_on = [aws_iam_role_policy.this]
}

resource "aws_lambda_function_url" "this" {
  count = var.enable_function_url ? 1 : 0

  function_name      = aws_lambda_function.this.function_name
  authorization_type = var.function_url_auth_type
  invoke_mode        = "BUFFERED"
}

# A URL without IAM auth still needs a resource policy that lets anyone call it;
# the bot then rejects every request whose Standard Webhooks signature fails.
resource "aws_lambda_permission" "public_url" {
  count = var.enable_function_url && var.function_url_auth_type == "NONE" ? 1 : 0

  statement_id           = "PublicFunctionUrl"
  action                 = "lambda:InvokeFunctionUrl"
  function_name          = aws_lambda_function.this.function_name
  principal              = "*"
  function_url_auth_type = "NONE"
}
