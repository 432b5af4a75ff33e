provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, {
      Application = "shardline"
      Stack       = var.name
      ManagedBy   = "terraform"
    })
  }
}
