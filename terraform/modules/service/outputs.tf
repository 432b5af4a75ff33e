output "service_name" {
  description = "Name of the ECS service."
  value       = one(concat(aws_ecs_service.this[*].name, aws_ecs_service.autoscaled[*].name))
}

output "security_group_id" {
  description = "The service's own security group (outbound HTTPS only)."
  value       = aws_security_group.this.id
}

output "task_role_name" {
  description = "Name of the task role (what the shardline process may call)."
  value       = aws_iam_role.task.name
}

output "task_definition_arn" {
  description = "ARN of the current task definition revision."
  value       = aws_ecs_task_definition.this.arn
}
