"""Apply the whole root module to moto_server, inspect it, destroy it.

The tests in this file run in order against one applied stack: the first
applies it, the middle ones read it back with boto3, the last destroys it and
checks that nothing is left. moto_server runs on a free 127.0.0.1 port and is
stopped by the fixture; no other address is contacted.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest

import tfkit

REGION = "us-east-1"
NAME = "sltest"
APP = "TESTAPP"
MOTO_TFVARS = tfkit.TESTS_DIR / "moto.tfvars"

# Actions that AWS offers no resource-level permissions for, so "*" is the
# only possible resource.
STAR_RESOURCE_OK = {
    "ecr:GetAuthorizationToken",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
}


class Stack:
    """One applied copy of the root module and the moto_server it lives in."""

    def __init__(self, terraform: tfkit.Terraform, work: Path):
        self.terraform = terraform
        self.work = work
        self.dir = tfkit.copy_stack(work / "stack")
        self.data_dir = work / "data"
        self.moto = tfkit.MotoServer(work / "moto_server.log")
        (self.dir / "moto_override.tf").write_text(self.moto.provider_override())
        self.zip_path = work / "bootstrap.zip"
        with zipfile.ZipFile(self.zip_path, "w") as archive:
            archive.writestr("bootstrap", "#!/bin/sh\n# dummy bot for the moto_server test\n")
        self.var_args = [f"-var-file={MOTO_TFVARS}", f"-var=bot_zip_path={self.zip_path}"]
        self.outputs: dict = {}
        self.destroyed = False

    def tf(self, *args: str, timeout: float = 420, check: bool = True):
        return self.terraform.run(self.dir, self.data_dir, *args, timeout=timeout, check=check)

    def client(self, service: str):
        return self.moto.boto3_client(service, REGION)

    def state_text(self) -> str:
        return (self.dir / "terraform.tfstate").read_text()

    def state_resource(self, address: str) -> dict:
        """Attribute values of one resource instance, from `terraform show -json`."""
        state = json.loads(self.tf("show", "-json").stdout)

        def walk(module):
            yield from module.get("resources", [])
            for child in module.get("child_modules", []):
                yield from walk(child)

        for resource in walk(state["values"]["root_module"]):
            if resource["address"] == address:
                return resource["values"]
        raise AssertionError(f"{address} is not in the state")


@pytest.fixture(scope="module")
def stack(terraform, tmp_path_factory):
    stack = Stack(terraform, tmp_path_factory.mktemp("moto"))
    try:
        stack.terraform.init(stack.dir, stack.data_dir)
        yield stack
    finally:
        if not stack.destroyed:
            stack.tf("destroy", "-auto-approve", "-input=false", "-no-color", "-parallelism=1", *stack.var_args, check=False)
        stack.moto.stop()


@pytest.fixture(scope="module")
def applied(stack):
    # One operation at a time: moto's ECS backend can lose a task definition
    # update under Terraform's parallel calls (seen once: a deregistered task
    # definition still listed ACTIVE after destroy). Real AWS needs no such care.
    stack.tf("apply", "-auto-approve", "-input=false", "-no-color", "-parallelism=1", *stack.var_args)
    stack.outputs = {k: v["value"] for k, v in json.loads(stack.tf("output", "-json").stdout).items()}
    return stack


def policies_of(iam, role_name: str) -> list[dict]:
    """Every statement of a role's inline policies (the stack attaches no managed ones)."""
    attached = iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
    assert not attached, f"{role_name} has managed policies attached: {attached}"
    statements = []
    for policy_name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)["PolicyDocument"]
        if isinstance(document, str):
            document = json.loads(document)
        for statement in document["Statement"]:
            statements.append(statement)
    return statements


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def allowed(statements: list[dict]) -> dict[str, set[str]]:
    """action => resources, over the Allow statements."""
    grants: dict[str, set[str]] = {}
    for statement in statements:
        assert statement.get("Effect", "Allow") == "Allow"
        for action in as_list(statement["Action"]):
            grants.setdefault(action, set()).update(as_list(statement["Resource"]))
    return grants


def assert_least_privilege(role: str, grants: dict[str, set[str]]):
    for action, resources in grants.items():
        assert action != "*" and not action.endswith(":*"), f"{role}: wildcard action {action}"
        if "*" in resources:
            assert action in STAR_RESOURCE_OK, f"{role}: {action} on every resource"


# --- apply ----------------------------------------------------------------------------


def test_apply_succeeds(applied):
    assert applied.outputs["bot_function_name"] == f"{NAME}-bot"


def test_second_plan_adds_and_destroys_nothing(applied):
    """A re-plan must not replace anything (moto drops a few attributes, so in-place updates are tolerated)."""
    proc = applied.tf("plan", "-input=false", "-no-color", "-detailed-exitcode", *applied.var_args, check=False)
    assert proc.returncode in (0, 2), proc.stderr
    if proc.returncode == 0:
        return
    summary = re.search(r"Plan: (\d+) to add, (\d+) to change, (\d+) to destroy", proc.stdout)
    assert summary, proc.stdout[-4000:]
    added, _, destroyed = map(int, summary.groups())
    assert (added, destroyed) == (0, 0), proc.stdout[-6000:]


# --- what was applied -------------------------------------------------------------------


def test_network_is_private(applied):
    ec2 = applied.client("ec2")
    vpc_id = applied.outputs["vpc_id"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    private = [s for s in subnets if s["SubnetId"] in applied.outputs["private_subnet_ids"]]
    assert len(private) == 3
    assert len({s["AvailabilityZone"] for s in private}) == 3
    assert not any(s["MapPublicIpOnLaunch"] for s in subnets)
    nats = ec2.describe_nat_gateways(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["NatGateways"]
    assert len([n for n in nats if n["State"] != "deleted"]) == 1
    flow_logs = ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [vpc_id]}])["FlowLogs"]
    assert len(flow_logs) == 1


def test_secrets_exist_encrypted_and_values_stay_out_of_state(applied):
    sm = applied.client("secretsmanager")
    kms_key = applied.outputs["kms_key_arn"]
    secrets = {s["Name"]: s for s in sm.list_secrets()["SecretList"]}
    expected = {f"{NAME}/discord-token", f"{NAME}/webhook-signing-keys", f"{NAME}/nats-auth", f"{NAME}/nats-tls"}
    assert expected <= set(secrets)
    for name in expected:
        assert secrets[name].get("KmsKeyId") in (kms_key, kms_key.split("/")[-1]), name

    # The token and the TLS material are set out of band: Terraform wrote no value.
    for name in (f"{NAME}/discord-token", f"{NAME}/nats-tls"):
        with pytest.raises(sm.exceptions.ResourceNotFoundException):
            sm.get_secret_value(SecretId=name)

    # Generated values exist in Secrets Manager but never in the state.
    state = applied.state_text()
    webhook = json.loads(sm.get_secret_value(SecretId=f"{NAME}/webhook-signing-keys")["SecretString"])
    assert isinstance(webhook, list) and webhook and all(k.startswith("whsec_") for k in webhook)
    nats_auth = json.loads(sm.get_secret_value(SecretId=f"{NAME}/nats-auth")["SecretString"])
    assert nats_auth["user"] == "shardline" and len(nats_auth["password"]) >= 32
    for value in [*webhook, webhook[0].removeprefix("whsec_"), nats_auth["password"]]:
        assert value not in state, "a generated secret value leaked into terraform.tfstate"


def test_bot_function_configuration(applied):
    lam = applied.client("lambda")
    outputs = applied.outputs
    config = lam.get_function_configuration(FunctionName=outputs["bot_function_name"])
    assert config["Runtime"] == "provided.al2023"
    assert config["Handler"] == "bootstrap"
    assert config["MemorySize"] == 512
    assert config["Timeout"] == 12
    assert config["Architectures"] == ["arm64"]
    assert config["KMSKeyArn"] == outputs["kms_key_arn"]
    assert config["TracingConfig"]["Mode"] == "Active"
    assert sorted(config["VpcConfig"]["SubnetIds"]) == sorted(outputs["private_subnet_ids"])

    env = config["Environment"]["Variables"]
    assert env["SHARDLINE_APP"] == APP
    assert env["SHARDLINE_PREFIX"] == "discord"
    assert env["SHARDLINE_NATS_URL"] == outputs["nats_url"]
    assert env["SHARDLINE_DISCORD_TOKEN_SECRET_ARN"] == outputs["discord_token_secret_arn"]
    assert env["SHARDLINE_WEBHOOK_SECRET_ARN"] == outputs["webhook_signing_secret_arn"]
    assert env["BOT_GREETING"] == "hello"
    assert "DISCORD_TOKEN" not in env, "secret values never go into the function's environment"

    concurrency = lam.get_function_concurrency(FunctionName=outputs["bot_function_name"])
    assert concurrency["ReservedConcurrentExecutions"] == 7

    url = lam.get_function_url_config(FunctionName=outputs["bot_function_name"])
    assert url["AuthType"] == "AWS_IAM"
    assert outputs["bot_function_url"] == url["FunctionUrl"]


def test_bot_role_is_least_privilege(applied):
    iam = applied.client("iam")
    outputs = applied.outputs
    role = outputs["bot_role_name"]
    trust = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    if isinstance(trust, str):
        trust = json.loads(trust)
    assert [s["Principal"]["Service"] for s in trust["Statement"]] == ["lambda.amazonaws.com"]

    grants = allowed(policies_of(iam, role))
    assert_least_privilege(role, grants)
    assert grants["secretsmanager:GetSecretValue"] == {
        outputs["discord_token_secret_arn"],
        outputs["webhook_signing_secret_arn"],
        outputs["nats_auth_secret_arn"],
        outputs["nats_tls_secret_arn"],
    }
    assert grants["logs:PutLogEvents"] == {outputs["log_group_arns"]["bot"] + ":*"}
    assert grants["kms:Decrypt"] == {outputs["kms_key_arn"]}
    assert "logs:CreateLogGroup" not in grants
    assert not any(a.startswith(("iam:", "lambda:", "s3:", "ecs:")) for a in grants)


def test_service_roles_are_least_privilege(applied):
    iam = applied.client("iam")
    outputs = applied.outputs
    bridge_grants = allowed(policies_of(iam, outputs["bridge_task_role_name"]))
    assert_least_privilege("bridge task", bridge_grants)
    function = outputs["bot_function_arn"]
    assert bridge_grants["lambda:InvokeFunction"] == {function, f"{function}:*"}
    assert "secretsmanager:GetSecretValue" not in bridge_grants

    for role, task_role in outputs["gateway_task_role_names"].items():
        grants = allowed(policies_of(iam, task_role))
        assert_least_privilege(f"{role} task", grants)
        # The gateway calls no AWS API itself; only the metrics sidecar writes its log group.
        assert set(grants) <= {"logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"}, grants
        for resources in grants.values():
            assert resources == {outputs["log_group_arns"]["metrics"] + ":*"}


def task_definition(applied, arn: str) -> dict:
    return applied.client("ecs").describe_task_definition(taskDefinition=arn)["taskDefinition"]


def execution_secret_grants(applied, task_def: dict) -> set[str]:
    iam = applied.client("iam")
    role = task_def["executionRoleArn"].split("/")[-1]
    grants = allowed(policies_of(iam, role))
    assert_least_privilege(role, grants)
    return grants.get("secretsmanager:GetSecretValue", set())


def test_ecs_services_and_counts(applied):
    ecs = applied.client("ecs")
    outputs = applied.outputs
    cluster = outputs["ecs_cluster_name"]
    expected = {
        f"{NAME}-coordinator": 2,
        f"{NAME}-worker": 3,
        f"{NAME}-bridge": 2,
        f"{NAME}-nats-0": 1,
        f"{NAME}-nats-1": 1,
        f"{NAME}-nats-2": 1,
    }
    arns = ecs.list_services(cluster=cluster)["serviceArns"]
    services = {s["serviceName"]: s for s in ecs.describe_services(cluster=cluster, services=arns)["services"]}
    assert set(services) == set(expected)
    for name, count in expected.items():
        service = services[name]
        assert service["desiredCount"] == count, name
        assert service["launchType"] == "FARGATE", name
        network = service["networkConfiguration"]["awsvpcConfiguration"]
        assert network["assignPublicIp"] == "DISABLED", name
        assert set(network["subnets"]) <= set(outputs["private_subnet_ids"]), name
    assert outputs["gateway_service_names"] == {"coordinator": f"{NAME}-coordinator", "worker": f"{NAME}-worker"}


def test_gateway_and_bridge_task_definitions(applied):
    outputs = applied.outputs
    commands = {}
    for role, arn in [*outputs["gateway_task_definition_arns"].items(), ("bridge", outputs["bridge_task_definition_arn"])]:
        task_def = task_definition(applied, arn)
        containers = {c["name"]: c for c in task_def["containerDefinitions"]}
        main = containers["shardline"]
        commands[role] = main["command"]
        assert main["image"] == outputs["container_image"]
        assert main["user"] == "10001:10001"
        assert main["readonlyRootFilesystem"] is True
        assert task_def["requiresCompatibilities"] == ["FARGATE"]
        assert task_def["executionRoleArn"] != task_def["taskRoleArn"]
        env = {e["name"]: e["value"] for e in main["environment"]}
        assert env["SHARDLINE_NATS_URL"] == outputs["nats_url"]
        assert env["SHARDLINE_APP"] == APP
        assert env["SHARDLINE_STREAM_REPLICAS"] == "3"
        assert env["SHARDLINE_METRICS_LISTEN"] == "0.0.0.0:9090"
        assert "9090/healthz" in " ".join(main["healthCheck"]["command"])
        secrets = {s["name"]: s["valueFrom"] for s in main["secrets"]}
        assert secrets["SHARDLINE_NATS_PASSWORD"] == outputs["nats_auth_secret_arn"] + ":password::"
        grants = execution_secret_grants(applied, task_def)
        if role == "bridge":
            assert "DISCORD_TOKEN" not in secrets, "the bridge must not see the bot token"
            assert secrets["SHARDLINE_WEBHOOK_SECRETS"] == outputs["webhook_signing_secret_arn"]
            assert env["SHARDLINE_BRIDGE_LAMBDA_FUNCTION"] == outputs["bot_function_arn"]
            assert outputs["discord_token_secret_arn"] not in grants
        else:
            assert secrets["DISCORD_TOKEN"] == outputs["discord_token_secret_arn"]
            assert outputs["webhook_signing_secret_arn"] not in grants
            assert outputs["discord_token_secret_arn"] in grants
        # The metrics sidecar turns /metrics into CloudWatch metrics.
        sidecar = containers["metrics"]
        config = next(e["value"] for e in sidecar["environment"] if e["name"] == "AOT_CONFIG_CONTENT")
        assert "shardline_bridge_consumer_pending" in config and "127.0.0.1:9090" in config
    assert commands == {"coordinator": ["coordinator"], "worker": ["worker"], "bridge": ["bridge"]}


def test_nats_cluster_nodes(applied):
    outputs = applied.outputs
    ecs = applied.client("ecs")
    cluster = outputs["ecs_cluster_name"]
    assert outputs["nats_url"] == ",".join(f"tls://nats-{i}.{NAME}.internal:4222" for i in range(3))
    for node, service_name in outputs["nats_service_names"].items():
        service = ecs.describe_services(cluster=cluster, services=[service_name])["services"][0]
        task_def = task_definition(applied, service["taskDefinition"])
        store = next(v for v in task_def["volumes"] if v["name"] == "store")["efsVolumeConfiguration"]
        assert store["fileSystemId"] == outputs["nats_file_system_id"]
        assert store["transitEncryption"] == "ENABLED"
        assert store["authorizationConfig"]["iam"] == "ENABLED"
        containers = {c["name"]: c for c in task_def["containerDefinitions"]}
        config = next(e["value"] for e in containers["config"]["environment"] if e["name"] == "NATS_CONFIG")
        assert f"server_name: {node}" in config
        assert "jetstream" in config and "verify: true" in config
        other = [f"nats-route://nats-{i}.{NAME}.internal:6222" for i in range(3) if f"nats-{i}" != node]
        assert all(route in config for route in other)
        assert containers["nats"]["user"] == "1000:1000"

    # moto does not echo deployment settings back; read them from the state.
    for node in outputs["nats_service_names"]:
        attributes = applied.state_resource(f'module.nats[0].aws_ecs_service.node["{node}"]')
        assert attributes["deployment_maximum_percent"] == 100, "two servers must never share a store"
        assert attributes["deployment_minimum_healthy_percent"] == 0

    # The nodes' role may mount the store only through their access points.
    iam = applied.client("iam")
    node_service = ecs.describe_services(cluster=cluster, services=[f"{NAME}-nats-0"])["services"][0]
    node_role = task_definition(applied, node_service["taskDefinition"])["taskRoleArn"].split("/")[-1]
    statements = policies_of(iam, node_role)
    mount = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    assert [sorted(as_list(s["Action"])) for s in statements] == [mount]
    access_point_condition = statements[0]["Condition"]["StringEquals"]["elasticfilesystem:AccessPointArn"]
    assert len(as_list(access_point_condition)) == 3

    efs = applied.client("efs")
    file_system = efs.describe_file_systems(FileSystemId=outputs["nats_file_system_id"])["FileSystems"][0]
    assert file_system["Encrypted"] is True
    access_points = efs.describe_access_points(FileSystemId=outputs["nats_file_system_id"])["AccessPoints"]
    assert len(access_points) == 3


def test_log_groups_and_alarms(applied):
    outputs = applied.outputs
    logs = applied.client("logs")
    groups = {g["logGroupName"]: g for g in logs.describe_log_groups()["logGroups"]}
    for name in outputs["log_group_names"].values():
        assert groups[name]["retentionInDays"] == 14, name
        assert groups[name].get("kmsKeyId") == outputs["kms_key_arn"], name

    cloudwatch = applied.client("cloudwatch")
    alarms = {a["AlarmName"]: a for a in cloudwatch.describe_alarms()["MetricAlarms"]}
    assert set(outputs["alarm_names"]) <= set(alarms)
    lag = alarms[f"{NAME}-consumer-lag"]
    assert (lag["Namespace"], lag["MetricName"]) == ("Shardline", "shardline_bridge_consumer_pending")
    assert lag["Dimensions"] == [{"Name": "App", "Value": APP}]
    assert alarms[f"{NAME}-dead-letters"]["MetricName"] == "shardline_bridge_dead_letter_depth"
    assert alarms[f"{NAME}-shards-not-ready"]["MetricName"] == "shardline_gateway_shards_not_ready"
    for name in outputs["alarm_names"]:
        assert alarms[name]["AlarmActions"] == [outputs["alarm_topic_arn"]], name


def test_image_repository(applied):
    ecr = applied.client("ecr")
    repo = ecr.describe_repositories(repositoryNames=[NAME])["repositories"][0]
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["imageScanningConfiguration"]["scanOnPush"] is True
    assert applied.outputs["container_image"] == f"{repo['repositoryUri']}:0.1.0-test"


# --- destroy ------------------------------------------------------------------------------


def test_destroy_leaves_nothing(applied):
    outputs = applied.outputs
    # moto sometimes fails one call during a long destroy; destroy is
    # idempotent, so a second run finishes the job. What must hold is checked below.
    first = applied.tf("destroy", "-auto-approve", "-input=false", "-no-color", "-parallelism=1", *applied.var_args, check=False)
    if first.returncode != 0:
        applied.tf("destroy", "-auto-approve", "-input=false", "-no-color", "-parallelism=1", *applied.var_args)
    applied.destroyed = True
    assert applied.tf("state", "list").stdout.strip() == ""

    ec2 = applied.client("ec2")
    assert not ec2.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [outputs["vpc_id"]]}])["Vpcs"]
    assert not [a for a in ec2.describe_addresses()["Addresses"]]
    assert not [n for n in ec2.describe_nat_gateways()["NatGateways"] if n["State"] != "deleted"]
    assert not [g for g in ec2.describe_security_groups()["SecurityGroups"] if g["GroupName"].startswith(NAME)]

    secrets = applied.client("secretsmanager").list_secrets()["SecretList"]
    assert not [s for s in secrets if s["Name"].startswith(f"{NAME}/")]

    lam = applied.client("lambda")
    assert not lam.list_functions()["Functions"]

    iam = applied.client("iam")
    assert not [r for r in iam.list_roles()["Roles"] if r["RoleName"].startswith(NAME)]

    ecs = applied.client("ecs")
    clusters = ecs.describe_clusters(clusters=[outputs["ecs_cluster_name"]])["clusters"]
    assert all(c["status"] == "INACTIVE" for c in clusters)
    assert not ecs.list_task_definitions(status="ACTIVE")["taskDefinitionArns"]

    assert not applied.client("efs").describe_file_systems()["FileSystems"]
    assert not applied.client("logs").describe_log_groups()["logGroups"]
    assert not applied.client("cloudwatch").describe_alarms()["MetricAlarms"]
    assert not applied.client("sns").list_topics()["Topics"]
    assert not applied.client("ecr").describe_repositories()["repositories"]
    assert not applied.client("servicediscovery").list_namespaces()["Namespaces"]

    # KMS keys cannot be deleted at once; the stack's key must be scheduled.
    key = applied.client("kms").describe_key(KeyId=outputs["kms_key_arn"])["KeyMetadata"]
    assert key["KeyState"] == "PendingDeletion"


# --- the other shape, planned -------------------------------------------------------------


def plan_fresh(stack: Stack, label: str, *extra_vars: str) -> dict[str, dict]:
    """Plans the stack from an empty state in its own working copy; returns address => planned values."""
    work = stack.work / label
    directory = tfkit.copy_stack(work / "stack")
    (directory / "moto_override.tf").write_text(stack.moto.provider_override())
    data_dir = work / "data"
    stack.terraform.init(directory, data_dir)
    plan_file = work / "tfplan"
    stack.terraform.run(
        directory, data_dir, "plan", "-input=false", "-no-color", f"-out={plan_file}", *stack.var_args, *extra_vars
    )
    plan = json.loads(stack.terraform.run(directory, data_dir, "show", "-json", str(plan_file)).stdout)
    return {c["address"]: c["change"]["after"] for c in plan["resource_changes"] if c["change"]["actions"] == ["create"]}


def test_what_moto_cannot_apply_still_plans_with_the_defaults(stack):
    """Bridge autoscaling, EFS backups and the EFS policy are on by default; moto lacks their APIs, so plan them."""
    creates = plan_fresh(
        stack,
        "defaults",
        "-var=enable_bridge_autoscaling=true",
        "-var=nats_efs_backups=true",
        "-var=nats_efs_policy=true",
    )
    target = creates["module.bridge.aws_appautoscaling_target.this[0]"]
    assert (target["min_capacity"], target["max_capacity"]) == (2, 6)
    assert target["resource_id"] == f"service/{NAME}/{NAME}-bridge"
    assert target["scalable_dimension"] == "ecs:service:DesiredCount"
    scale_out = creates["module.bridge.aws_appautoscaling_policy.scale_out[0]"]
    steps = scale_out["step_scaling_policy_configuration"][0]["step_adjustment"]
    assert sorted(step["scaling_adjustment"] for step in steps) == [1, 2]
    high = creates["module.bridge.aws_cloudwatch_metric_alarm.lag_high[0]"]
    assert (high["metric_name"], high["threshold"]) == ("shardline_bridge_consumer_pending", 1000)
    low = creates["module.bridge.aws_cloudwatch_metric_alarm.lag_low[0]"]
    assert (low["comparison_operator"], low["threshold"]) == ("LessThanThreshold", 100)
    # desired_count belongs to Application Auto Scaling once it scales the service.
    assert "module.bridge.module.service.aws_ecs_service.autoscaled[0]" in creates
    assert "module.bridge.module.service.aws_ecs_service.this[0]" not in creates
    assert creates["module.nats[0].aws_efs_backup_policy.this[0]"]["backup_policy"] == [{"status": "ENABLED"}]
    assert "module.nats[0].aws_efs_file_system_policy.this[0]" in creates


def test_small_bot_with_external_nats_plans(stack):
    """Plan the other shape from an empty state and read the plan.

    External NATS, combined gateway, no metrics sidecar, no NAT, bot outside the VPC.
    """
    external_url = "tls://nats-a.example.net:4222,tls://nats-b.example.net:4222"
    creds = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:nats-creds-AbCdEf"
    creates = plan_fresh(
        stack,
        "external",
        "-var=nats_mode=external",
        f"-var=external_nats_url={external_url}",
        f"-var=external_nats_credentials_secret_arn={creds}",
        '-var=external_nats_cidr_blocks=["198.51.100.0/24"]',
        "-var=gateway_mode=combined",
        "-var=gateway_worker_count=2",
        "-var=enable_metrics_sidecar=false",
        "-var=enable_nat_gateway=false",
        "-var=bot_in_vpc=false",
    )

    assert not [a for a in creates if a.startswith("module.nats")], "no managed cluster with an external NATS"
    assert not [a for a in creates if "nats_auth" in a or "nats_tls" in a]
    assert not [a for a in creates if "aws_nat_gateway" in a or "aws_eip" in a]
    assert not [a for a in creates if "appautoscaling" in a], "no scaling without the lag metric"
    assert not [a for a in creates if a.startswith("module.observability.aws_cloudwatch_metric_alarm.consumer_lag")]

    gateway = creates['module.gateway.module.service["gateway"].aws_ecs_service.this[0]']
    assert gateway["desired_count"] == 2
    # Task definitions and the function's environment embed secret ARNs, which
    # are unknown until apply; the applied tests above read those. Here: only one service and no sidecar role.
    assert 'module.gateway.module.service["gateway"].aws_ecs_task_definition.this' in creates
    assert not [a for a in creates if 'aws_iam_role_policy.sidecar' in a]

    egress = creates["aws_security_group.external_nats[0]"]["egress"]
    assert [(r["from_port"], r["cidr_blocks"]) for r in egress] == [(4222, ["198.51.100.0/24"])]

    function = creates["module.bot.aws_lambda_function.this"]
    assert function["vpc_config"] == []
    assert not [a for a in creates if a.startswith("module.bot.aws_security_group")]
