output "function_name" {
  description = "Name of the bot function."
  value       = aws_lambda_function.this.function_name
}

output "function_arn" {
  description = "ARN of the bot function (what the bridge invokes)."
  value       = aws_lambda_function.this.arn
}

output "function_url" {
  description = "Function URL of the bot, or null when disabled."
  value       = one(aws_lambda_function_url.this[*].function_url)
}

output "role_name" {
  description = "Name of the function's execution role."
  value       = aws_iam_role.this.name
}
