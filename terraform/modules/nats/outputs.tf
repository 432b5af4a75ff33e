output "client_url" {
  description = "Comma-separated TLS URLs of every node, for SHARDLINE_NATS_URL."
  value       = local.client_url
}

output "client_security_group_id" {
  description = "Security group to attach to anything that connects to NATS."
  value       = aws_security_group.clients.id
}

output "service_names" {
  description = "ECS service name of each node, keyed by node name."
  value       = { for n, s in aws_ecs_service.node : n => s.name }
}

output "file_system_id" {
  description = "EFS file system holding the JetStream stores."
  value       = aws_efs_file_system.this.id
}
