# A JetStream cluster of node_count nats-server tasks on Fargate.
#
# - Each node is its own ECS service (desired 1, never two copies at once) with
#   its own EFS access point, so a replaced task comes back with its store.
# - Nodes find each other through Cloud Map names nats-<i>.<dns_namespace>.
# - Clients and routes use TLS; routes authenticate each other with mutual TLS,
#   clients with the user and password from Secrets Manager.
# - Streams are created by shardline with R3 (SHARDLINE_STREAM_REPLICAS), so
#   losing one node or one zone loses nothing.

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  nodes        = { for i in range(var.node_count) : "nats-${i}" => i }
  node_host    = { for n, _ in local.nodes : n => "${n}.${var.dns_namespace}" }
  client_port  = 4222
  route_port   = 6222
  monitor_port = 8222
  client_url   = join(",", [for n in sort(keys(local.nodes)) : "tls://${local.node_host[n]}:${local.client_port}"])

  server_config = { for n, _ in local.nodes : n => <<-CONF
    server_name: ${n}
    listen: 0.0.0.0:${local.client_port}
    http: 127.0.0.1:${local.monitor_port}
    max_payload: ${var.max_payload_bytes}
    lame_duck_duration: "30s"
    lame_duck_grace_period: "10s"

    jetstream {
      store_dir: "/data"
      max_file_store: ${var.max_file_store_gib}G
      max_memory_store: 256M
    }

    tls {
      cert_file: "/etc/nats/tls/cert.pem"
      key_file: "/etc/nats/tls/key.pem"
      ca_file: "/etc/nats/tls/ca.pem"
      timeout: 5
    }

    authorization {
      users: [
        { user: $NATS_USER, password: $NATS_PASSWORD }
      ]
    }

    cluster {
      name: "${var.name}"
      listen: 0.0.0.0:${local.route_port}
      routes: [
        ${join("\n    ", [for m in sort(keys(local.nodes)) : "nats-route://${local.node_host[m]}:${local.route_port}" if m != n])}
      ]
      tls {
        cert_file: "/etc/nats/tls/cert.pem"
        key_file: "/etc/nats/tls/key.pem"
        ca_file: "/etc/nats/tls/ca.pem"
        verify: true
        timeout: 5
      }
    }
    CONF
  }

  # Writes the configuration (plain environment) and TLS material (injected
  # from Secrets Manager) into the task's shared scratch volume.
  init_script = join(" && ", [
    "mkdir -p /etc/nats/tls",
    "printf '%s' \"$NATS_CONFIG\" > /etc/nats/nats.conf",
    "printf '%s\\n' \"$TLS_CA\" > /etc/nats/tls/ca.pem",
    "printf '%s\\n' \"$TLS_CERT\" > /etc/nats/tls/cert.pem",
    "printf '%s\\n' \"$TLS_KEY\" > /etc/nats/tls/key.pem",
    "chown -R 1000:1000 /etc/nats",
    "chmod 0400 /etc/nats/tls/key.pem",
  ])
}

# --- Security groups --------------------------------------------------------------

resource "aws_security_group" "clients" {
  # checkov:skip=CKV2_AWS_5: attached by the root module to the gateway, bridge and bot, outside this module where the graph check cannot follow.
  name        = "${var.name}-nats-clients"
  description = "Attach to anything that may connect to NATS"
  vpc_id      = var.vpc_id

  tags = { Name = "${var.name}-nats-clients" }
}

resource "aws_vpc_security_group_egress_rule" "clients_to_nats" {
  security_group_id            = aws_security_group.clients.id
  description                  = "NATS client connections"
  ip_protocol                  = "tcp"
  from_port                    = local.client_port
  to_port                      = local.client_port
  referenced_security_group_id = aws_security_group.servers.id
}

resource "aws_security_group" "servers" {
  name        = "${var.name}-nats-servers"
  description = "NATS servers: clients on 4222, routes between nodes on 6222"
  vpc_id      = var.vpc_id

  tags = { Name = "${var.name}-nats-servers" }
}

resource "aws_vpc_security_group_ingress_rule" "servers_from_clients" {
  security_group_id            = aws_security_group.servers.id
  description                  = "NATS clients"
  ip_protocol                  = "tcp"
  from_port                    = local.client_port
  to_port                      = local.client_port
  referenced_security_group_id = aws_security_group.clients.id
}

resource "aws_vpc_security_group_ingress_rule" "servers_routes" {
  security_group_id            = aws_security_group.servers.id
  description                  = "Cluster routes between nodes"
  ip_protocol                  = "tcp"
  from_port                    = local.route_port
  to_port                      = local.route_port
  referenced_security_group_id = aws_security_group.servers.id
}

resource "aws_vpc_security_group_egress_rule" "servers_routes" {
  security_group_id            = aws_security_group.servers.id
  description                  = "Cluster routes between nodes"
  ip_protocol                  = "tcp"
  from_port                    = local.route_port
  to_port                      = local.route_port
  referenced_security_group_id = aws_security_group.servers.id
}

resource "aws_vpc_security_group_egress_rule" "servers_efs" {
  security_group_id            = aws_security_group.servers.id
  description                  = "NFS to the JetStream file system"
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  referenced_security_group_id = aws_security_group.efs.id
}

resource "aws_vpc_security_group_egress_rule" "servers_https" {
  security_group_id = aws_security_group.servers.id
  description       = "HTTPS to AWS APIs and the image registry"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_security_group" "efs" {
  name        = "${var.name}-nats-efs"
  description = "NFS from the NATS servers only"
  vpc_id      = var.vpc_id

  tags = { Name = "${var.name}-nats-efs" }
}

resource "aws_vpc_security_group_ingress_rule" "efs_from_servers" {
  security_group_id            = aws_security_group.efs.id
  description                  = "NFS from NATS servers"
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  referenced_security_group_id = aws_security_group.servers.id
}

# --- Storage ------------------------------------------------------------------------

resource "aws_efs_file_system" "this" {
  creation_token   = "${var.name}-nats"
  encrypted        = true
  kms_key_id       = var.kms_key_arn
  performance_mode = "generalPurpose"
  throughput_mode  = var.efs_throughput_mode

  tags = { Name = "${var.name}-nats" }
}

resource "aws_efs_mount_target" "this" {
  count = length(var.subnet_ids)

  file_system_id  = aws_efs_file_system.this.id
  subnet_id       = var.subnet_ids[count.index]
  security_groups = [aws_security_group.efs.id]
}

resource "aws_efs_access_point" "node" {
  for_each = local.nodes

  file_system_id = aws_efs_file_system.this.id

  posix_user {
    uid = 1000
    gid = 1000
  }

  root_directory {
    path = "/${each.key}"

    creation_info {
      owner_uid   = 1000
      owner_gid   = 1000
      permissions = "0750"
    }
  }

  tags = { Name = "${var.name}-${each.key}" }
}

data "aws_iam_policy_document" "efs" {
  count = var.enable_file_system_policy ? 1 : 0

  statement {
    sid       = "DenyUnencryptedTransport"
    effect    = "Deny"
    actions   = ["*"]
    resources = [aws_efs_file_system.this.arn]

    principals {
      type        = "AWS"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid       = "NodesMountThroughAccessPoints"
    actions   = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    resources = [aws_efs_file_system.this.arn]

    principals {
      type        = "AWS"
      identifiers = [aws_iam_role.task.arn]
    }

    condition {
      test     = "StringEquals"
      variable = "elasticfilesystem:AccessPointArn"
      values   = [for ap in aws_efs_access_point.node : ap.arn]
    }
  }
}

resource "aws_efs_file_system_policy" "this" {
  count = var.enable_file_system_policy ? 1 : 0

  file_system_id = aws_efs_file_system.this.id
  policy         = data.aws_iam_policy_document.efs[0].json
}

resource "aws_efs_backup_policy" "this" {
  count = var.enable_backups ? 1 : 0

  file_system_id = aws_efs_file_system.this.id

  backup_policy {
    status = "ENABLED"
  }
}

# --- Service discovery ------------------------------------------------------------

resource "aws_service_discovery_private_dns_namespace" "this" {
  name        = var.dns_namespace
  description = "${var.name}: NATS node names"
  vpc         = var.vpc_id
}

resource "aws_service_discovery_service" "node" {
  for_each = local.nodes

  name = each.key

  dns_config {
    namespace_id   = aws_service_discovery_private_dns_namespace.this.id
    routing_policy = "MULTIVALUE"

    dns_records {
      type = "A"
      ttl  = 10
    }
  }

  health_check_custom_config {
    failure_threshold = 1
  }
}

# --- Roles --------------------------------------------------------------------------

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
  }
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "WriteContainerLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:log-group:${var.log_group_name}:*"]
  }

  statement {
    sid       = "ReadStartupSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.auth_secret_arn, var.tls_secret_arn]
  }

  statement {
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

resource "aws_iam_role" "execution" {
  name               = "${var.name}-nats-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy" "execution" {
  name   = "start-task"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# The servers call no AWS API. The role mounts the file system (IAM
# authorization), only through the nodes' access points.
resource "aws_iam_role" "task" {
  name               = "${var.name}-nats-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "task" {
  statement {
    sid       = "MountStoreThroughAccessPoints"
    actions   = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    resources = [aws_efs_file_system.this.arn]

    condition {
      test     = "StringEquals"
      variable = "elasticfilesystem:AccessPointArn"
      values   = [for ap in aws_efs_access_point.node : ap.arn]
    }
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "mount-jetstream-store"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}

# --- Nodes ------------------------------------------------------------------------

resource "aws_ecs_task_definition" "node" {
  for_each = local.nodes

  family                   = "${var.name}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  volume {
    name = "config"
  }

  volume {
    name = "store"

    efs_volume_configuration {
      file_system_id     = aws_efs_file_system.this.id
      transit_encryption = "ENABLED"

      authorization_config {
        access_point_id = aws_efs_access_point.node[each.key].id
        iam             = "ENABLED"
      }
    }
  }

  container_definitions = jsonencode([
    {
      name                   = "config"
      image                  = var.init_image
      essential              = false
      readonlyRootFilesystem = true
      entryPoint             = ["/bin/sh", "-c"]
      command                = [local.init_script]
      environment            = [{ name = "NATS_CONFIG", value = local.server_config[each.key] }]
      secrets = [
        { name = "TLS_CA", valueFrom = "${var.tls_secret_arn}:ca::" },
        { name = "TLS_CERT", valueFrom = "${var.tls_secret_arn}:cert::" },
        { name = "TLS_KEY", valueFrom = "${var.tls_secret_arn}:key::" },
      ]
      mountPoints = [{ sourceVolume = "config", containerPath = "/etc/nats" }]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = var.log_group_name
          awslogs-region        = data.aws_region.current.name
          awslogs-stream-prefix = "${each.key}-config"
        }
      }
    },
    {
      name                   = "nats"
      image                  = var.image
      essential              = true
      user                   = "1000:1000"
      readonlyRootFilesystem = true
      command                = ["nats-server", "--config", "/etc/nats/nats.conf"]
      stopTimeout            = 60
      dependsOn              = [{ containerName = "config", condition = "SUCCESS" }]
      portMappings = [
        { containerPort = local.client_port, protocol = "tcp", name = "client" },
        { containerPort = local.route_port, protocol = "tcp", name = "route" },
      ]
      secrets = [
        { name = "NATS_USER", valueFrom = "${var.auth_secret_arn}:user::" },
        { name = "NATS_PASSWORD", valueFrom = "${var.auth_secret_arn}:password::" },
      ]
      mountPoints = [
        { sourceVolume = "config", containerPath = "/etc/nats", readOnly = true },
        { sourceVolume = "store", containerPath = "/data" },
      ]
      healthCheck = {
        command     = ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:${local.monitor_port}/healthz?js-enabled-only=true"]
        interval    = 15
        timeout     = 5
        retries     = 3
        startPeriod = 60
      }
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = var.log_group_name
          awslogs-region        = data.aws_region.current.name
          awslogs-stream-prefix = each.key
        }
      }
    },
  ])
}

resource "aws_ecs_service" "node" {
  for_each = local.nodes

  name                    = "${var.name}-${each.key}"
  cluster                 = var.cluster_arn
  task_definition         = aws_ecs_task_definition.node[each.key].arn
  desired_count           = 1
  launch_type             = "FARGATE"
  platform_version        = "LATEST"
  propagate_tags          = "SERVICE"
  enable_ecs_managed_tags = true
  wait_for_steady_state   = false

  # Never two servers on one store: stop the old task before starting the new.
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100

  network_configuration {
    subnets          = [var.subnet_ids[each.value % length(var.subnet_ids)]]
    security_groups  = [aws_security_group.servers.id]
    assign_public_ip = false
  }

  service_registries {
    registry_arn = aws_service_discovery_service.node[each.key].arn
  }

  depends_on = [aws_efs_mount_target.this, aws_efs_file_system_policy.this]
}
