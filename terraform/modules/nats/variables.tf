variable "name" {
  type        = string
  description = "Name prefix for the cluster's resources."
}

variable "vpc_id" {
  type        = string
  description = "VPC to run the cluster in."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets; node i runs in subnet i modulo their count, so three zones hold one node each."
}

variable "cluster_arn" {
  type        = string
  description = "ECS cluster to run the nodes in."
}

variable "node_count" {
  type        = number
  description = "Number of NATS servers (3 tolerates one loss with R3 streams; 5 tolerates two)."

  validation {
    condition     = contains([3, 5], var.node_count)
    error_message = "node_count must be 3 or 5 (JetStream needs an odd quorum)."
  }
}

variable "image" {
  type        = string
  description = "nats-server container image (Alpine variant, >= 2.10)."
}

variable "init_image" {
  type        = string
  description = "Small image with a POSIX shell that writes the server configuration and TLS files before NATS starts."
}

variable "cpu" {
  type        = number
  description = "Fargate CPU units per node."
}

variable "memory" {
  type        = number
  description = "Fargate memory per node in MiB."
}

variable "cpu_architecture" {
  type        = string
  description = "X86_64 or ARM64."
}

variable "max_file_store_gib" {
  type        = number
  description = "JetStream file store limit per node in GiB."
}

variable "max_payload_bytes" {
  type        = number
  description = "Largest message NATS accepts (large GUILD_CREATE payloads need more than the 1 MiB default)."
}

variable "auth_secret_arn" {
  type        = string
  description = "Secret holding JSON {user, password} for clients."
}

variable "tls_secret_arn" {
  type        = string
  description = "Secret holding JSON {ca, cert, key} in PEM; the certificate must name *.<dns_namespace> and allow server and client auth (routes use mutual TLS)."
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key for the file system and the secrets."
}

variable "log_group_name" {
  type        = string
  description = "CloudWatch log group for the servers' output."
}

variable "dns_namespace" {
  type        = string
  description = "Private DNS namespace (Cloud Map) that names the nodes nats-0, nats-1, ..."
}

variable "enable_file_system_policy" {
  type        = bool
  description = "Attach a file system policy that denies unencrypted NFS and lets only the node role mount, through the nodes' access points."
}

variable "enable_backups" {
  type        = bool
  description = "Turn on AWS Backup's daily backups of the JetStream file system."
}

variable "efs_throughput_mode" {
  type        = string
  description = "EFS throughput mode: elastic (pay per use, recommended) or bursting."

  validation {
    condition     = contains(["elastic", "bursting"], var.efs_throughput_mode)
    error_message = "efs_throughput_mode must be elastic or bursting."
  }
}
