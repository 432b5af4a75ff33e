# The gateway: shards connected to Discord, and the identify coordinator.
# Tasks take no inbound traffic; they reach Discord (HTTPS/WSS on 443) and NATS.

locals {
  roles = var.mode == "combined" ? {
    gateway = { command = ["gateway"], count = var.worker_count }
    } : {
    coordinator = { command = ["coordinator"], count = var.coordinator_count }
    worker      = { command = ["worker"], count = var.worker_count }
  }
}

module "service" {
  source   = "../service"
  for_each = local.roles

  name                     = "${var.name}-${each.key}"
  cluster_arn              = var.cluster_arn
  subnet_ids               = var.subnet_ids
  vpc_id                   = var.vpc_id
  extra_security_group_ids = var.extra_security_group_ids
  image                    = var.image
  command                  = each.value.command
  cpu                      = var.cpu
  memory                   = var.memory
  cpu_architecture         = var.cpu_architecture
  desired_count            = each.value.count
  environment              = var.environment
  secrets                  = var.secrets
  secret_arns              = var.secret_arns
  kms_key_arn              = var.kms_key_arn
  log_group_name           = var.log_group_name
  metrics_port             = var.metrics_port
  metrics_sidecar          = var.metrics_sidecar
}
