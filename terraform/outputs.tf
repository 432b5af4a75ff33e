output "ecr_repository_url" {
  description = "Push the shardline image here (null when create_ecr_repository is false)."
  value       = one(aws_ecr_repository.shardline[*].repository_url)
}

output "container_image" {
  description = "Image the gateway and bridge services run."
  value       = local.image
}

output "ecs_cluster_name" {
  description = "ECS cluster running NATS, the gateway and the bridge."
  value       = aws_ecs_cluster.this.name
}

output "vpc_id" {
  description = "VPC of the stack."
  value       = module.network.vpc_id
}

output "private_subnet_ids" {
  description = "Private subnets of the stack."
  value       = module.network.private_subnet_ids
}

output "vpc_cidr_block" {
  description = "CIDR of the stack's VPC."
  value       = module.network.vpc_cidr_block
}

output "nat_public_ips" {
  description = "Addresses the stack's outbound traffic leaves from."
  value       = module.network.nat_public_ips
}

output "nats_url" {
  description = "SHARDLINE_NATS_URL the services use."
  value       = local.nats_url
}

output "nats_service_names" {
  description = "ECS services of the managed NATS nodes (empty with an external NATS)."
  value       = local.managed_nats ? module.nats[0].service_names : {}
}

output "nats_file_system_id" {
  description = "EFS file system holding the JetStream stores (null with an external NATS)."
  value       = local.managed_nats ? module.nats[0].file_system_id : null
}

output "gateway_service_names" {
  description = "ECS services of the gateway keyed by role."
  value       = module.gateway.service_names
}

output "gateway_desired_counts" {
  description = "Desired task counts of the gateway services keyed by role."
  value       = module.gateway.desired_counts
}

output "gateway_task_role_names" {
  description = "Task roles of the gateway services keyed by role."
  value       = module.gateway.task_role_names
}

output "gateway_task_definition_arns" {
  description = "Task definitions of the gateway services keyed by role."
  value       = module.gateway.task_definition_arns
}

output "gateway_security_group_ids" {
  description = "Security groups of the gateway services keyed by role."
  value       = module.gateway.security_group_ids
}

output "bridge_service_name" {
  description = "ECS service of the bridge."
  value       = module.bridge.service_name
}

output "bridge_task_role_name" {
  description = "Task role of the bridge."
  value       = module.bridge.task_role_name
}

output "bridge_task_definition_arn" {
  description = "Task definition of the bridge."
  value       = module.bridge.task_definition_arn
}

output "bridge_security_group_id" {
  description = "Security group of the bridge tasks."
  value       = module.bridge.security_group_id
}

output "bridge_scaling" {
  description = "Scaling bounds of the bridge."
  value       = module.bridge.scaling
}

output "bot_function_name" {
  description = "Name of the bot function."
  value       = module.bot.function_name
}

output "bot_function_arn" {
  description = "ARN of the bot function."
  value       = module.bot.function_arn
}

output "bot_function_url" {
  description = "Function URL of the bot (null unless bot_enable_function_url)."
  value       = module.bot.function_url
}

output "bot_role_name" {
  description = "Execution role of the bot function."
  value       = module.bot.role_name
}

output "kms_key_arn" {
  description = "The stack's KMS key."
  value       = module.secrets.kms_key_arn
}

output "discord_token_secret_arn" {
  description = "Put the bot token here: aws secretsmanager put-secret-value --secret-id <this> --secret-string <token>."
  value       = module.secrets.discord_token_secret_arn
}

output "webhook_signing_secret_arn" {
  description = "Standard Webhooks signing keys for HTTPS deliveries."
  value       = module.secrets.webhook_signing_secret_arn
}

output "nats_auth_secret_arn" {
  description = "NATS client credentials (managed cluster only)."
  value       = module.secrets.nats_auth_secret_arn
}

output "nats_tls_secret_arn" {
  description = "Put the NATS TLS material here as JSON {ca, cert, key} (managed cluster only)."
  value       = module.secrets.nats_tls_secret_arn
}

output "log_group_names" {
  description = "CloudWatch log groups of the stack."
  value       = module.observability.log_group_names
}

output "log_group_arns" {
  description = "ARNs of those log groups."
  value       = module.observability.log_group_arns
}

output "alarm_topic_arn" {
  description = "SNS topic of the stack's alarms (subscribe your pager)."
  value       = module.observability.alarm_topic_arn
}

output "alarm_names" {
  description = "Names of the paging alarms."
  value       = module.observability.alarm_names
}
