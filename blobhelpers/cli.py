"""Command-line interface: ``blobhelpers <command>`` or ``python -m blobhelpers <command>``.

This module parses and dispatches. The commands live with their wings: the blob commands in
:mod:`blobhelpers.blob.commands`, ``blobhelpers svm ...`` in :mod:`blobhelpers.svm.commands`; the
pipeline plumbing (``run-notebook``, ``profile``) is the core's.

Exit status: 0 success; 2 bad input or usage (the message names the file and the
problem); 1 unexpected internal error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from blobhelpers import __version__
from blobhelpers.blob.commands import register as register_blob
from blobhelpers.core.config import apply_profile
from blobhelpers.core.errors import EXIT_OK, run_guarded
from blobhelpers.core.report import run_notebook
from blobhelpers.params import check
from blobhelpers.svm.commands import register as register_svm

__all__ = ["main", "build_parser"]


def cmd_run_notebook(a) -> int:
    run_notebook(a.notebook, a.params, a.html, a.ipynb, kernel=a.kernel)
    print(str(a.html))
    return EXIT_OK


def cmd_params_check(a) -> int:
    sections = check(a.file)
    print(f"{a.file}: {len(sections)} sections valid ({', '.join(sections)})")
    return EXIT_OK


def cmd_profile(a) -> int:
    print(apply_profile(a.name, a.params))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="blobhelpers", description="WFC3/IR blob and HST SVM data-quality ML tools.",
        epilog="User commands: simulate, difference, classify, monitor, review, confirm, svm. Pipeline plumbing "
               "(what dvc.yaml and tasks.sh run): prepare, run-notebook, profile. Exit status: 0 success, "
               "2 bad input (the message names the file), 1 internal error; monitor: 3 = new blob.")
    p.add_argument("--version", action="version", version=f"blobhelpers {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    register_blob(sub)

    s = sub.add_parser("run-notebook", help="[pipeline] build, execute (papermill) and render (HTML) a stage notebook")
    s.add_argument("notebook", type=Path)
    s.add_argument("--params", type=Path, default=Path("params.yaml"))
    s.add_argument("--html", type=Path, required=True)
    s.add_argument("--ipynb", type=Path, default=None)
    s.add_argument("--kernel", default=None)
    s.set_defaults(func=cmd_run_notebook)

    s = sub.add_parser("params", help="check params.yaml: every section's keys and value types (exit 2 naming the key)")
    s.add_argument("action", choices=["check"])
    s.add_argument("file", type=Path, nargs="?", default=Path("params.yaml"))
    s.set_defaults(func=cmd_params_check)

    s = sub.add_parser("profile", help="[pipeline] merge a parameter profile (profiles/NAME.yaml) into params.yaml")
    s.add_argument("name")
    s.add_argument("--params", type=Path, default=None)
    s.set_defaults(func=cmd_profile)

    register_svm(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_guarded(args.func, args, f"blobhelpers {args.command}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
