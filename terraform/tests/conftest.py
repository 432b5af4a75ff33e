"""Shared fixtures for the Terraform checks.

Layout:
- ``tfkit.py``      finding terraform and the provider mirror, temporary working
                    copies, running terraform, starting moto_server.
- ``conftest.py``   (this file) the session fixtures built from it, and the loud
                    summary of anything skipped.
- ``test_static.py``   fmt, validate, the HCL rules (python-hcl2), tfvars example.
- ``test_checkov.py``  checkov over terraform/ and the Dockerfile.
- ``test_moto.py``     apply the root module to moto_server, inspect it with
                       boto3, destroy, check nothing is left.
- ``test_dockerfile.py`` structure of the Dockerfile.

Nothing here writes into the repository: working copies, the CLI config, the
data dir and the state live in pytest's temporary directory.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tfkit  # noqa: E402

_LOUD_SKIPS: list[str] = []


def loud_skip(reason: str) -> None:
    """Skips the current test and makes sure the reason is seen."""
    banner = f"\n{'!' * 78}\n!! TERRAFORM CHECKS SKIPPED: {reason}\n{'!' * 78}\n"
    sys.stderr.write(banner)
    if reason not in _LOUD_SKIPS:
        _LOUD_SKIPS.append(reason)
    pytest.skip(f"TERRAFORM CHECKS SKIPPED: {reason}")


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001
    for reason in _LOUD_SKIPS:
        terminalreporter.write_sep("!", "TERRAFORM CHECKS SKIPPED", red=True, bold=True)
        terminalreporter.write_line(reason, red=True, bold=True)
        terminalreporter.write_line(
            "fmt, validate and the moto_server apply did not run; install terraform "
            ">= 1.11 and an AWS provider mirror (or set SHARDLINE_TF_PROVIDER_MIRROR).",
            red=True,
        )


@pytest.fixture(scope="session")
def terraform(tmp_path_factory) -> tfkit.Terraform:
    """A terraform CLI wired to the offline provider mirror, or a loud skip."""
    tf_bin = tfkit.find_terraform()
    if tf_bin is None:
        loud_skip("`terraform` is not installed (not on PATH, or SHARDLINE_TERRAFORM does not name an executable)")
    version = tfkit.terraform_version(tf_bin)
    if version < (1, 11):
        loud_skip(f"terraform {'.'.join(map(str, version))} is too old; the stack needs >= 1.11 (write-only arguments)")
    mirror = tfkit.find_provider_mirror(tfkit.terraform_platform(tf_bin))
    if mirror is None:
        explicit = os.environ.get("SHARDLINE_TF_PROVIDER_MIRROR")
        where = (
            f"SHARDLINE_TF_PROVIDER_MIRROR={explicit}"
            if explicit
            else ", ".join(str(r) for r in tfkit.mirror_search_roots())
        )
        loud_skip(f"no filesystem mirror with registry.terraform.io/hashicorp/aws 5.x for this platform (searched {where})")
    sys.stderr.write(f"terraform {tf_bin}, AWS provider mirror {mirror}\n")
    return tfkit.Terraform(tf_bin, mirror, tmp_path_factory.mktemp("terraform-home"))


@pytest.fixture(scope="session")
def validated_copy(terraform: tfkit.Terraform, tmp_path_factory) -> Path:
    """An initialised working copy of the root module (no backend, no overrides)."""
    work = tmp_path_factory.mktemp("validate")
    stack = tfkit.copy_stack(work / "stack")
    terraform.init(stack, work / "data", backend=False)
    return stack
