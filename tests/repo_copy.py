"""Helpers of the end-to-end tests: a clean copy of the repository as a fresh clone would have it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path


def sh(cmd, cwd, env, check=True, timeout=900):
    """Run *cmd*; on failure raise with the end of its output."""
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
    return r


def project_copy(root: Path, dest: Path) -> dict:
    """Copy the project's files (git-tracked + new unignored, stage outputs left out) to *dest*,
    make it a fresh git repository, and return the environment to run its commands in."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for f in filter(None, files):
        src = root / f
        if not src.is_file() or f.startswith(("reports/", "plots/", "metrics/")):
            continue  # stage outputs are rebuilt
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / f)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": str(dest), "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    env.pop("DVC", None)
    sh(["git", "init", "-q"], dest, env)
    return env
