"""Static checks: terraform fmt and validate, and the HCL rules read with python-hcl2.

The HCL rules run everywhere; fmt and validate need terraform and the provider
mirror and skip loudly without them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import hcl2
import pytest

from tfkit import TF_DIR, TESTS_DIR

MODULES_DIR = TF_DIR / "modules"


def module_dirs() -> list[Path]:
    """The root module and every module under modules/."""
    return [TF_DIR, *sorted(p for p in MODULES_DIR.iterdir() if p.is_dir())]


def tf_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.tf"))


def parse(path: Path) -> dict:
    """The file's top level; python-hcl2's own bookkeeping keys (__comments__, ...) dropped."""
    with path.open() as handle:
        return {k: v for k, v in hcl2.load(handle).items() if not k.startswith("__")}


def strip_quotes(value):
    """python-hcl2 keeps the quotes of string literals and block labels in some versions."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def blocks(directory: Path, kind: str) -> dict[str, dict]:
    """All `kind` blocks (variable, output, module) of a module: name => body."""
    found: dict[str, dict] = {}
    for path in tf_files(directory):
        for block in parse(path).get(kind, []):
            for name, body in block.items():
                if not name.startswith("__"):
                    found[strip_quotes(name)] = body
    return found


def source_text(directory: Path) -> str:
    """The module's HCL without comments, for reference searches."""
    text = "\n".join(p.read_text() for p in tf_files(directory))
    text = re.sub(r"(?m)^\s*(#|//).*$", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def test_every_module_is_found():
    names = {p.name for p in module_dirs()}
    assert {"network", "nats", "gateway", "bridge", "bot", "secrets", "observability"} <= names


@pytest.mark.parametrize("directory", module_dirs(), ids=lambda p: p.name)
def test_every_variable_has_type_and_description(directory: Path):
    variables = blocks(directory, "variable")
    assert variables, f"{directory.name} declares no variables"
    problems = []
    for name, body in variables.items():
        if "type" not in body:
            problems.append(f"{name}: no type")
        description = strip_quotes(body.get("description", ""))
        if not isinstance(description, str) or len(description.strip()) < 10:
            problems.append(f"{name}: no real description")
    assert not problems, f"{directory.name}: " + "; ".join(problems)


@pytest.mark.parametrize("directory", module_dirs(), ids=lambda p: p.name)
def test_every_output_has_description(directory: Path):
    outputs = blocks(directory, "output")
    missing = [n for n, b in outputs.items() if not strip_quotes(b.get("description", "")).strip()]
    assert not missing, f"{directory.name}: outputs without description: {missing}"


@pytest.mark.parametrize("directory", module_dirs(), ids=lambda p: p.name)
def test_every_variable_is_used(directory: Path):
    text = source_text(directory)
    unused = [n for n in blocks(directory, "variable") if not re.search(rf"\bvar\.{re.escape(n)}\b", text)]
    assert not unused, f"{directory.name}: variables declared but never used: {unused}"


def module_calls() -> list[tuple[Path, str, Path]]:
    """Every module call: (caller directory, call name, called module directory)."""
    calls = []
    for caller in module_dirs():
        for name, body in blocks(caller, "module").items():
            source = strip_quotes(body["source"])
            assert source.startswith("."), f"{caller.name}: module {name} must use a local source, not {source}"
            calls.append((caller, name, (caller / source).resolve()))
    return calls


def test_every_module_is_called():
    called = {target for _, _, target in module_calls()}
    uncalled = [p.name for p in module_dirs()[1:] if p.resolve() not in called]
    assert not uncalled, f"modules nobody calls: {uncalled}"


@pytest.mark.parametrize("call", module_calls(), ids=lambda c: f"{c[0].name}->{c[1]}")
def test_every_module_output_is_used_or_exported(call):
    caller, name, target = call
    text = source_text(caller)
    # for_each / count calls are often read through a for expression:
    # `{ for k, svc in module.service : k => svc.service_name }`.
    aliases = set(re.findall(rf"for\s+(?:\w+\s*,\s*)?(\w+)\s+in\s+module\.{re.escape(name)}\b", text))
    unused = []
    for output in blocks(target, "output"):
        patterns = [rf"\bmodule\.{re.escape(name)}(\[[^\]]*\])?\.{re.escape(output)}\b"]
        patterns += [rf"\b{re.escape(a)}\.{re.escape(output)}\b" for a in aliases]
        if not any(re.search(p, text) for p in patterns):
            unused.append(output)
    assert not unused, f"outputs of module {name} ({target.name}) that {caller.name} never uses: {unused}"


def test_root_outputs_exist():
    outputs = blocks(TF_DIR, "output")
    for expected in ("ecr_repository_url", "nats_url", "bot_function_arn", "discord_token_secret_arn", "alarm_topic_arn"):
        assert expected in outputs


def test_provider_pin_accepts_the_mirror_version():
    """versions.tf pins the AWS provider to 5.x; the mirror carries 5.100.0."""
    for directory in module_dirs():
        terraform_blocks = [b for p in tf_files(directory) for b in parse(p).get("terraform", [])]
        assert terraform_blocks, f"{directory.name}: no terraform block"
        providers = terraform_blocks[0]["required_providers"][0]["aws"]
        assert strip_quotes(providers["source"]) == "hashicorp/aws"
        assert strip_quotes(providers["version"]) == "~> 5.0"
        assert strip_quotes(terraform_blocks[0]["required_version"]) == ">= 1.11"


def test_tfvars_example_sets_only_known_variables_and_every_required_one():
    example = parse(TF_DIR / "terraform.tfvars.example")
    variables = blocks(TF_DIR, "variable")
    unknown = sorted(set(example) - set(variables))
    assert not unknown, f"terraform.tfvars.example sets undeclared variables: {unknown}"
    required = sorted(n for n, b in variables.items() if "default" not in b)
    missing = [n for n in required if n not in example]
    assert not missing, f"terraform.tfvars.example leaves required variables unset: {missing}"


def test_moto_tfvars_sets_only_known_variables():
    moto = parse(TESTS_DIR / "moto.tfvars")
    unknown = sorted(set(moto) - set(blocks(TF_DIR, "variable")))
    assert not unknown, f"moto.tfvars sets undeclared variables: {unknown}"


def test_no_secret_values_or_machine_paths_committed():
    for path in sorted(TF_DIR.rglob("*")):
        if not path.is_file() or path.suffix not in {".tf", ".tfvars", ".example", ".md"}:
            continue
        text = path.read_text()
        assert not re.search(r"AKIA[0-9A-Z]{16}", text), f"{path}: looks like an AWS access key"
        assert "/opt/tf-plugins" not in text and "/work/" not in text, f"{path}: machine-specific path"


# --- terraform itself -------------------------------------------------------------------


def test_terraform_fmt(terraform):
    proc = terraform.run(TF_DIR, terraform.home / "fmt-data", "fmt", "-check", "-recursive", "-diff", "-no-color", ".", check=False)
    assert proc.returncode == 0, f"terraform fmt -check found unformatted files:\n{proc.stdout}{proc.stderr}"


def test_terraform_validate(terraform, validated_copy):
    data_dir = validated_copy.parent / "data"
    proc = terraform.run(validated_copy, data_dir, "validate", "-json", "-no-color", check=False)
    result = json.loads(proc.stdout)
    assert result["valid"], json.dumps(result["diagnostics"], indent=2)
    warnings = [d["summary"] for d in result["diagnostics"] if d["severity"] == "warning"]
    assert not warnings, f"terraform validate warnings: {warnings}"
