"""The Dockerfile, checked statically: no Docker engine runs on these machines.

hadolint is not installable here either, so the instructions are parsed and
checked against the repository: every COPY source exists and is in the build
context (.dockerignore), the base and the uv sync are the locked ones, the
runtime user is a numeric non-root uid, and the entrypoint is the `rucat`
console script whose module exists.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from rucat.config import RucatConfig

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    rest: str


def parse_dockerfile(path: Path) -> list[Instruction]:
    """Instructions with continuation lines joined and comment lines dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            keyword, _, rest = full.partition(" ")
            instructions.append(Instruction(keyword.upper(), rest.strip()))
    assert not pending, "Dockerfile ends inside a continuation line"
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    return stages(instructions)[-1]


def instructions_of(instructions: list[Instruction], keyword: str) -> list[str]:
    return [i.rest for i in instructions if i.keyword == keyword]


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule for simple patterns: the last pattern matching the path or
    one of its parent folders decides; `!` re-includes."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body.strip("/")
        if any(fnmatch(c, body) for c in candidates):
            excluded = not negate
    return excluded


def dockerignore_patterns() -> list[str]:
    ignore = ROOT / ".dockerignore"
    lines = ignore.read_text(encoding="utf-8").splitlines() if ignore.exists() else []
    return [s for s in (line.strip() for line in lines) if s and not s.startswith("#")]


def test_dockerfile_copies_only_files_in_the_repo_and_the_build_context() -> None:
    instructions = parse_dockerfile(DOCKERFILE)
    aliases = {
        i.rest.split()[-1].lower()
        for i in instructions
        if i.keyword == "FROM" and " as " in i.rest.lower()
    }
    patterns = dockerignore_patterns()
    copies = [i for i in instructions if i.keyword in ("COPY", "ADD")]
    assert copies
    for ins in copies:
        assert ins.keyword == "COPY", "ADD fetches URLs and unpacks archives: use COPY"
        tokens = json.loads(ins.rest) if ins.rest.startswith("[") else shlex.split(ins.rest)
        flags = [t for t in tokens if t.startswith("--")]
        sources = [t for t in tokens if not t.startswith("--")][:-1]
        stage = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
        if stage is not None:
            assert stage.lower() in aliases, f"COPY --from an unknown stage: {ins.rest}"
            continue
        for source in sources:
            assert (ROOT / source).exists(), f"COPY source {source} is not in the repo"
            assert not dockerignored(source, patterns), f"{source} is excluded by .dockerignore"
    # The context stays small: the venv, caches and VCS data are never sent.
    for heavy in (".venv", ".cache/helm", ".git", "tests"):
        assert dockerignored(heavy, patterns), heavy
    for needed in ("src/rucat/config/__init__.py", "pyproject.toml", "uv.lock", "README.md"):
        assert not dockerignored(needed, patterns), needed


def test_dockerfile_builds_from_the_lock_on_python_311_slim() -> None:
    instructions = parse_dockerfile(DOCKERFILE)
    args_before_from = {
        i.rest.split("=")[0]
        for i in instructions[: next(n for n, i in enumerate(instructions) if i.keyword == "FROM")]
        if i.keyword == "ARG"
    }
    defaults = dict(a.split("=", 1) for a in instructions_of(instructions, "ARG") if "=" in a)
    for base in instructions_of(instructions, "FROM"):
        image = base.split()[0]
        for var in re.findall(r"\$\{?(\w+)\}?", image):
            assert var in args_before_from, f"FROM uses {var}, not an ARG before the first FROM"
            image = re.sub(r"\$\{?" + var + r"\}?", defaults[var], image)
        assert image.startswith("python:3.11-slim"), image
    syncs = [r for r in instructions_of(instructions, "RUN") if "uv sync" in r]
    assert syncs
    for run in syncs:
        assert "--frozen" in run and "--no-dev" in run, run
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["requires-python"] == ">=3.11"


def test_dockerfile_runtime_runs_as_a_numeric_non_root_user() -> None:
    runtime = final_stage(parse_dockerfile(DOCKERFILE))
    keywords = [i.keyword for i in runtime]
    user_at = max(n for n, k in enumerate(keywords) if k == "USER")
    assert "RUN" not in keywords[user_at:], "a RUN after USER would run as the app user"
    uid, _, gid = runtime[user_at].rest.partition(":")
    assert uid.isdigit() and int(uid) != 0 and (not gid or int(gid) != 0)
    # The chart's securityContext runs as this uid.
    assert int(uid) == 10001
    # Java only on request (Local/Standalone platforms); Kubernetes engines
    # run in apache/spark images.
    java = [r for r in instructions_of(runtime, "RUN") if "openjdk" in r]
    assert java and all("WITH_JAVA" in r for r in java)
    assert "WITH_JAVA=false" in instructions_of(runtime, "ARG")


def test_dockerfile_entrypoint_is_the_rucat_console_script() -> None:
    runtime = final_stage(parse_dockerfile(DOCKERFILE))
    (entrypoint,) = instructions_of(runtime, "ENTRYPOINT")
    assert json.loads(entrypoint) == ["rucat"]
    cmd = json.loads(instructions_of(runtime, "CMD")[-1])
    assert cmd[0] in ("server", "monitor") and "--config-path" in cmd
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["scripts"]["rucat"], "no `rucat` console script"
    # The installed console script accepts what the image and the chart pass.
    rucat = Path(sys.executable).parent / "rucat"
    for command in ("server", "monitor"):
        result = subprocess.run(
            [str(rucat), command, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
        )
        assert result.returncode == 0, result.stderr
        assert "--config-path" in result.stdout, result.stdout
    exposed = {int(p) for r in instructions_of(runtime, "EXPOSE") for p in r.split()}
    assert exposed == {
        RucatConfig.model_fields["port"].default,
        RucatConfig.model_fields["connect_port"].default,
    }
