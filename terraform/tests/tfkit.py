"""Helpers for running Terraform offline against moto_server.

Everything that touches the machine lives here: where terraform and the
provider mirror are, temporary working copies, the CLI config, and the
moto_server process (started on a free loopback port, stopped by us).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TF_DIR = REPO / "terraform"
TESTS_DIR = TF_DIR / "tests"

# The provider version the stack pins (versions.tf: "~> 5.0").
PROVIDER_MAJOR = 5

# Where a filesystem mirror usually lives; searched only a few levels deep.
MIRROR_SEARCH_DEPTH = 4

# moto_server is on loopback: never send that traffic through a proxy.
for _var in ("NO_PROXY", "no_proxy"):
    _hosts = [h for h in os.environ.get(_var, "").split(",") if h]
    os.environ[_var] = ",".join(dict.fromkeys([*_hosts, "127.0.0.1", "localhost"]))


def find_terraform() -> str | None:
    explicit = os.environ.get("SHARDLINE_TERRAFORM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return shutil.which("terraform")


def _version_json(tf_bin: str) -> dict:
    out = subprocess.run(
        [tf_bin, "version", "-json"],
        check=True,
        capture_output=True,
        text=True,
        env=_base_env(),
        timeout=60,
    ).stdout
    return json.loads(out)


def terraform_version(tf_bin: str) -> tuple[int, int]:
    raw = _version_json(tf_bin)["terraform_version"]
    major, minor = raw.split(".")[:2]
    return int(major), int(minor)


def terraform_platform(tf_bin: str) -> str:
    return _version_json(tf_bin).get("platform", "linux_amd64")


def mirror_search_roots() -> list[Path]:
    home = Path.home()
    xdg = Path(os.environ.get("XDG_DATA_HOME", home / ".local" / "share"))
    return [
        home / ".terraform.d",
        xdg,
        Path("/opt"),
        Path("/usr/local/share"),
        Path("/usr/share"),
        Path("/usr/local/lib"),
    ]


def _has_aws_provider(mirror: Path, platform: str) -> bool:
    aws = mirror / "registry.terraform.io" / "hashicorp" / "aws"
    try:
        versions = [d for d in aws.iterdir() if d.is_dir()]
    except OSError:
        return False
    for version in versions:
        if version.name.split(".")[0] != str(PROVIDER_MAJOR):
            continue
        # Unpacked layout (<version>/<platform>/terraform-provider-aws_*) or
        # packed layout (terraform-provider-aws_<version>_<platform>.zip).
        if any((version / platform).glob("terraform-provider-aws*")):
            return True
    return any(aws.glob(f"terraform-provider-aws_{PROVIDER_MAJOR}.*_{platform}.zip"))


def _walk_for_registry_dir(root: Path, depth: int):
    """Yields directories named registry.terraform.io under root, at most depth levels down."""
    try:
        entries = list(os.scandir(root))
    except OSError:
        return
    for entry in entries:
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
        except OSError:
            continue
        if entry.name == "registry.terraform.io":
            yield Path(entry.path)
        elif depth > 1 and not entry.name.startswith("."):
            yield from _walk_for_registry_dir(Path(entry.path), depth - 1)


def find_provider_mirror(platform: str) -> Path | None:
    """The filesystem mirror holding hashicorp/aws 5.x for platform, or None.

    SHARDLINE_TF_PROVIDER_MIRROR names it explicitly (the folder that contains
    registry.terraform.io); otherwise a bounded set of usual roots is searched.
    """
    explicit = os.environ.get("SHARDLINE_TF_PROVIDER_MIRROR")
    if explicit:
        path = Path(explicit)
        if path.name == "registry.terraform.io":
            path = path.parent
        return path if _has_aws_provider(path, platform) else None
    for root in mirror_search_roots():
        for registry_dir in _walk_for_registry_dir(root, MIRROR_SEARCH_DEPTH):
            if _has_aws_provider(registry_dir.parent, platform):
                return registry_dir.parent
    return None


def copy_stack(dest: Path) -> Path:
    """Copies the root module and its modules (not the tests, not local state)."""
    ignore = shutil.ignore_patterns("tests", ".terraform", "*.tfstate*", ".terraform.lock.hcl", "__pycache__")
    shutil.copytree(TF_DIR, dest, ignore=ignore)
    return dest


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "AWS_"))}
    # No update checks, no prompts, no instance metadata look-ups.
    env.update(
        {"CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "AWS_EC2_METADATA_DISABLED": "true"}
    )
    return env


@dataclass
class Terraform:
    """The terraform CLI, installing providers only from the filesystem mirror.

    home is a scratch directory outside the repository for the CLI config.
    """

    binary: str
    mirror: Path
    home: Path
    cli_config: Path = field(init=False)

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.cli_config = self.home / "cli.tfrc"
        mirror = json.dumps(str(self.mirror))
        self.cli_config.write_text(
            "provider_installation {\n"
            "  filesystem_mirror {\n"
            f"    path    = {mirror}\n"
            '    include = ["registry.terraform.io/*/*"]\n'
            "  }\n"
            "  direct {\n"
            '    exclude = ["registry.terraform.io/*/*"]\n'
            "  }\n"
            "}\n"
        )

    def env(self, workdir: Path, data_dir: Path) -> dict[str, str]:
        env = _base_env()
        env["TF_CLI_CONFIG_FILE"] = str(self.cli_config)
        env["TF_DATA_DIR"] = str(data_dir)
        return env

    def run(
        self,
        workdir: Path,
        data_dir: Path,
        *args: str,
        timeout: float = 300,
        check: bool = True,
        extra_env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess:
        env = self.env(workdir, data_dir)
        env.update(extra_env or {})
        started = time.monotonic()
        proc = subprocess.run(
            [self.binary, *args],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        elapsed = time.monotonic() - started
        sys.stderr.write(f"terraform {' '.join(args[:1])}: exit {proc.returncode} in {elapsed:.1f}s\n")
        if check and proc.returncode != 0:
            raise AssertionError(
                f"terraform {' '.join(args)} failed ({proc.returncode}):\n"
                f"--- stdout (tail) ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
            )
        return proc

    def init(self, workdir: Path, data_dir: Path, backend: bool = True) -> None:
        args = ["init", "-input=false", "-no-color"]
        if not backend:
            args.append("-backend=false")
        self.run(workdir, data_dir, *args, timeout=180)


# --- moto_server --------------------------------------------------------------------

# Endpoint names of the AWS provider for every service the stack uses.
MOTO_SERVICES = [
    "applicationautoscaling",
    "cloudwatch",
    "ec2",
    "ecr",
    "ecs",
    "efs",
    "iam",
    "kms",
    "lambda",
    "logs",
    "s3",
    "secretsmanager",
    "servicediscovery",
    "sns",
    "sts",
]


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoServer:
    """A moto_server on a free 127.0.0.1 port; stop() ends exactly that process."""

    def __init__(self, log_path: Path):
        self.port = free_loopback_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        moto = Path(sys.executable).with_name("moto_server")
        cmd = [str(moto)] if moto.exists() else [sys.executable, "-m", "moto.server"]
        self.proc = subprocess.Popen(
            [*cmd, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited early with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"moto_server did not answer on {self.url} within {timeout}s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            # Our own process group (start_new_session), so werkzeug's children go too.
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()

    def provider_override(self) -> str:
        """An override file that points the AWS provider at this server."""
        endpoints = "\n".join(f'    {name:<22} = "{self.url}"' for name in MOTO_SERVICES)
        return (
            "# Written by terraform/tests: points the provider at moto_server.\n"
            'provider "aws" {\n'
            '  access_key                  = "moto-testing"\n'
            '  secret_key                  = "moto-testing"\n'
            "  skip_credentials_validation = true\n"
            "  skip_requesting_account_id  = true\n"
            "  skip_metadata_api_check     = true\n"
            "  skip_region_validation      = true\n"
            "  s3_use_path_style           = true\n"
            "  max_retries                 = 2\n"
            "\n"
            "  endpoints {\n"
            f"{endpoints}\n"
            "  }\n"
            "}\n"
        )

    def boto3_client(self, service: str, region: str):
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=region,
            aws_access_key_id="moto-testing",
            aws_secret_access_key="moto-testing",
        )
