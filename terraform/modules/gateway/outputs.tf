output "service_names" {
  description = "ECS service names keyed by role (gateway, or coordinator and worker)."
  value       = { for role, svc in module.service : role => svc.service_name }
}

output "desired_counts" {
  description = "Desired task count keyed by role."
  value       = { for role, r in local.roles : role => r.count }
}

output "task_role_names" {
  description = "Task role names keyed by role."
  value       = { for role, svc in module.service : role => svc.task_role_name }
}

output "task_definition_arns" {
  description = "Task definition ARNs keyed by role."
  value       = { for role, svc in module.service : role => svc.task_definition_arn }
}

output "security_group_ids" {
  description = "Each gateway service's own security group keyed by role."
  value       = { for role, svc in module.service : role => svc.security_group_id }
}
