output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr_block" {
  description = "IPv4 CIDR of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "private_subnet_ids" {
  description = "Private subnets, one per availability zone, where every task and the bot function run."
  value       = aws_subnet.private[*].id
}

output "nat_public_ips" {
  description = "Public addresses that the stack's outbound traffic (to Discord) leaves from; empty without NAT."
  value       = aws_eip.nat[*].public_ip
}
