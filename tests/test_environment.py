"""The environment is described three times and must agree: pyproject.toml (ranges),
requirements.lock (exact versions + hashes, what tasks.sh installs) and environment.yml (conda)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ImportError:  # Python 3.10 (pytest brings tomli there)
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
# The platform requirements.lock was resolved for (tasks.sh: LOCK_PYTHON / LOCK_PLATFORM).
LOCK_ENV = {"platform_machine": "x86_64", "sys_platform": "linux", "platform_system": "Linux",
            "os_name": "posix", "python_version": "3.11", "python_full_version": "3.11.7",
            "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def _requirements() -> list[Requirement]:
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in proj["dependencies"]]
    reqs += [Requirement(r) for extra in proj.get("optional-dependencies", {}).values() for r in extra]
    return [r for r in reqs if r.marker is None or r.marker.evaluate(LOCK_ENV)]


def _lock() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of requirements.lock."""
    text = (ROOT / "requirements.lock").read_text()
    out = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        m = re.match(r"([A-Za-z0-9_.\-]+)==([^\s;\\]+)", block)
        if m:
            out[canonicalize_name(m.group(1))] = (m.group(2), re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return out


def _environment_yml() -> dict[str, str]:
    """name -> version spec of environment.yml (conda and pip sections)."""
    deps = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    out = {}
    for d in deps:
        for item in (d["pip"] if isinstance(d, dict) else [d]):
            if item.startswith("-"):
                continue
            m = re.match(r"([A-Za-z0-9_.\-]+)\s*(.*)", item)
            out[canonicalize_name(m.group(1))] = m.group(2).strip()
    return out


REQS = _requirements()


def test_lock_is_complete_and_hashed():
    lock = _lock()
    assert len(lock) > 50, "requirements.lock looks truncated"
    unhashed = [n for n, (_, h) in lock.items() if not h]
    assert not unhashed, f"requirements.lock entries without hashes: {unhashed}"


@pytest.mark.parametrize("req", REQS, ids=lambda r: r.name)
def test_dependency_locked_within_range(req):
    lock = _lock()
    name = canonicalize_name(req.name)
    assert name in lock, f"{req.name} is a pyproject.toml dependency but not in requirements.lock: `bash tasks.sh lock`"
    version = lock[name][0]
    assert req.specifier.contains(version, prereleases=True), \
        f"requirements.lock pins {req.name}=={version}, outside pyproject.toml's {req.specifier}"


@pytest.mark.parametrize("req", REQS, ids=lambda r: r.name)
def test_dependency_in_environment_yml(req):
    env = _environment_yml()
    name = canonicalize_name(req.name)
    assert name in env, f"{req.name} is a pyproject.toml dependency but not in environment.yml"
    spec = env[name]
    m = re.fullmatch(r"==?\s*([^\s,]+)", spec)
    assert m, f"environment.yml: {req.name} should be pinned to the lock's version (got {spec!r})"
    assert m.group(1) == _lock()[name][0], \
        f"environment.yml has {req.name} {m.group(1)}, requirements.lock {_lock()[name][0]}"
    assert req.specifier.contains(m.group(1), prereleases=True)


def test_environment_yml_lists_nothing_unknown():
    known = {canonicalize_name(r.name) for r in REQS} | {"python", "pip"}
    extra = sorted(set(_environment_yml()) - known)
    assert not extra, f"environment.yml lists packages pyproject.toml does not: {extra}"


def test_tasks_installs_from_the_lock():
    tasks = (ROOT / "tasks.sh").read_text()
    assert "--require-hashes -r \"$LOCK\"" in tasks and "--no-deps -e ." in tasks
    assert 'cat pyproject.toml "$LOCK" | sha256sum' in tasks, "the install stamp must cover the lock"
