"""The Dockerfile's structure: multi-stage, small runtime, non-root, the right binary."""

from __future__ import annotations

import re

from tfkit import REPO

DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions():
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, rest))
    return found


def test_multi_stage_build_of_the_shardline_binary():
    all_stages = stages()
    assert len(all_stages) >= 2
    builder = all_stages[0]
    assert re.match(r"rust:\S+\s+AS\s+builder", builder[0][1], re.I)
    runs = " ".join(rest for keyword, rest in builder if keyword == "RUN")
    assert re.search(r"cargo build --release\b.*-p shardline\b", runs)
    assert "--locked" in runs


def test_runtime_stage_is_small_and_unprivileged():
    runtime = stages()[-1]
    base = runtime[0][1]
    assert re.search(r"(debian:\S*-slim|distroless)", base), base
    copies = [rest for keyword, rest in runtime if keyword == "COPY"]
    assert any(c.startswith("--from=builder") and "shardline" in c for c in copies)
    users = [rest for keyword, rest in runtime if keyword == "USER"]
    assert users, "the runtime stage must switch to a non-root user"
    assert users[-1].split(":")[0] not in ("root", "0"), users[-1]
    keywords = [keyword for keyword, _ in runtime]
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k in ("RUN", "COPY"))
    assert any(k == "HEALTHCHECK" for k in keywords)
    entry = [rest for keyword, rest in runtime if keyword == "ENTRYPOINT"]
    assert entry and "shardline" in entry[-1]
    installs = " ".join(rest for keyword, rest in runtime if keyword == "RUN")
    assert "--no-install-recommends" in installs and "rm -rf /var/lib/apt/lists" in installs


def test_dockerignore_keeps_the_context_small():
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {"target", ".git", ".tools", "terraform"} <= ignored
