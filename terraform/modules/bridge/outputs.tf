output "service_name" {
  description = "ECS service name of the bridge."
  value       = module.service.service_name
}

output "task_role_name" {
  description = "Task role of the bridge (may invoke the bot function only)."
  value       = module.service.task_role_name
}

output "task_definition_arn" {
  description = "Task definition ARN of the bridge."
  value       = module.service.task_definition_arn
}

output "security_group_id" {
  description = "The bridge tasks' own security group."
  value       = module.service.security_group_id
}

output "scaling" {
  description = "Scaling bounds of the bridge service."
  value = {
    enabled = var.enable_autoscaling
    min     = var.min_count
    max     = var.enable_autoscaling ? var.max_count : var.min_count
  }
}
