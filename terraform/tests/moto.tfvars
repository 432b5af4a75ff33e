# The stack as test_moto.py applies it to moto_server. bot_zip_path is passed
# on the command line (a dummy zip built by the test).

name        = "sltest"
region      = "us-east-1"
discord_app = "TESTAPP"
image_tag   = "0.1.0-test"

# A large-bot shape, so the split gateway and several counts are exercised.
gateway_mode              = "split"
gateway_worker_count      = 3
gateway_coordinator_count = 2
bridge_min_count          = 2
bridge_max_count          = 6

bot_memory_mb            = 512
bot_timeout_seconds      = 12
bot_reserved_concurrency = 7
bot_enable_function_url  = true
bot_environment          = { BOT_GREETING = "hello" }

log_retention_days = 14
alarm_emails       = ["ops@example.com"]

# So destroy leaves nothing behind.
secret_recovery_window_days = 0
kms_deletion_window_days    = 7
ecr_force_delete            = true

# moto_server does not implement these APIs (moto 5.x); each defaults to true
# and is covered by checkov and validate instead:
# - Application Auto Scaling ListTagsForResource (read after every scalable target)
enable_bridge_autoscaling = false
# - EFS PutBackupPolicy
nats_efs_backups = false
# - EFS DeleteFileSystemPolicy (apply works, destroy fails)
nats_efs_policy = false
