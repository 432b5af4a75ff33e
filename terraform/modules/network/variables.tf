variable "name" {
  type        = string
  description = "Name prefix for every resource in this module."
}

variable "cidr_block" {
  type        = string
  description = "IPv4 CIDR of the VPC. Private subnets take the first /20s, public subnets (NAT only) the /24s near the top."

  validation {
    condition     = can(cidrhost(var.cidr_block, 0)) && tonumber(split("/", var.cidr_block)[1]) <= 17
    error_message = "cidr_block must be a valid IPv4 CIDR of /17 or larger (four /20 private subnets plus the NAT subnets must fit)."
  }
}

variable "az_count" {
  type        = number
  description = "How many availability zones to spread the subnets over."

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 4
    error_message = "az_count must be between 2 and 4."
  }
}

variable "enable_nat_gateway" {
  type        = bool
  description = "Create public subnets, an internet gateway and NAT so private tasks reach Discord and public AWS endpoints."
}

variable "single_nat_gateway" {
  type        = bool
  description = "One NAT gateway for all zones (cheaper) instead of one per zone (survives a zone outage)."
}

variable "enable_flow_logs" {
  type        = bool
  description = "Record rejected and accepted VPC traffic to the given CloudWatch log group."
}

variable "flow_log_group_arn" {
  type        = string
  description = "ARN of the CloudWatch log group that receives VPC flow logs (used when enable_flow_logs is true)."
  default     = null
}

variable "interface_endpoints" {
  type        = set(string)
  description = "AWS services to reach through interface VPC endpoints instead of NAT (for example secretsmanager, logs, ecr.api, ecr.dkr, lambda, monitoring). The S3 gateway endpoint is always created."

  validation {
    condition     = alltrue([for s in var.interface_endpoints : can(regex("^[a-z0-9.-]+$", s))])
    error_message = "interface_endpoints holds service short names such as \"secretsmanager\" or \"ecr.dkr\"."
  }
}
