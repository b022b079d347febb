"""Build, execute and render the stage notebooks; the header every report starts with.

``run_notebook`` is what each DVC stage runs: the jupytext py:percent source is converted
to ``.ipynb``, executed by papermill with the whole params.yaml injected (``-f params.yaml``
semantics: each top-level section becomes a variable), and rendered to a self-contained
HTML report without code cells. Script tags that would load anything from the internet
(MathJax, require.js CDNs) are removed, so the report opens offline.
"""

from __future__ import annotations

import platform
import re
import subprocess
import sys
from pathlib import Path

from .errors import InputError
from .paths import atomic_path, project_root, write_text

__all__ = ["run_notebook", "versions", "header_markdown", "show_header", "strip_remote_scripts"]

KERNEL_NAME = "blobhelpers"

_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.IGNORECASE | re.DOTALL)
_REMOTE_LINK = re.compile(r"<link[^>]*\bhref=[\"']https?://[^>]*>", re.IGNORECASE)
_REMOTE_REF = re.compile(r"(\bsrc=[\"']https?://|import\s*\(?\s*[\"']https?://|\bfrom\s+[\"']https?://)",
                         re.IGNORECASE)


def strip_remote_scripts(html: str) -> str:
    """Remove every script that loads code from the internet, and remote stylesheets.

    nbconvert's lab template references MathJax and mermaid on public CDNs; a report must open
    offline and load nothing, so those ``<script>`` blocks (``src=`` or ``import`` of an http(s)
    URL) and ``<link href="http...">`` tags are dropped. Local scripts are kept.

    Examples
    --------
    >>> strip_remote_scripts('<script src="https://cdn/x.js"></script><script>var a=1;</script>')
    '<script>var a=1;</script>'
    """
    html = _SCRIPT.sub(lambda m: "" if _REMOTE_REF.search(m.group(0)) else m.group(0), html)
    return _REMOTE_LINK.sub("", html)


def _kernel_name() -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    return KERNEL_NAME if KERNEL_NAME in specs else "python3"


def run_notebook(source: str | Path, params: str | Path, html: str | Path, ipynb: str | Path | None = None,
                 kernel: str | None = None, cwd: str | Path | None = None, timeout: int | None = None) -> Path:
    """Convert, execute and render one stage notebook.

    Parameters
    ----------
    source : path
        jupytext py:percent notebook (``notebooks/NN_name.py``).
    params : path
        YAML file whose top-level sections are injected as notebook variables.
    html : path
        Report to write (atomically).
    ipynb : path, optional
        Where to keep the executed notebook (default: ``build/notebooks/<name>.ipynb``).
    kernel : str, optional
        Jupyter kernel (default: the project's ``blobhelpers`` kernel if registered, else
        ``python3``).
    cwd : path, optional
        Working folder of the kernel (default: the project root).
    """
    import jupytext
    import nbformat
    import papermill
    import yaml
    from nbconvert import HTMLExporter

    source, html = Path(source), Path(html)
    root = project_root()
    if not source.exists():
        raise InputError(f"{source}: notebook source not found")
    try:
        parameters = yaml.safe_load(Path(params).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{params}: cannot read parameters ({exc})") from exc
    ipynb = Path(ipynb) if ipynb else root / "build" / "notebooks" / f"{source.stem}.ipynb"
    ipynb.parent.mkdir(parents=True, exist_ok=True)
    nb = jupytext.read(source)
    built = ipynb.with_suffix(".src.ipynb")
    with atomic_path(built) as tmp:
        nbformat.write(nb, tmp)
    import os

    os.environ.pop("MPLBACKEND", None)  # the kernel inherits the environment: keep inline figures
    with atomic_path(ipynb) as tmp:
        papermill.execute_notebook(str(built), str(tmp), parameters=parameters,
                                   kernel_name=kernel or _kernel_name(), cwd=str(cwd or root),
                                   progress_bar=False, log_output=False, execution_timeout=timeout)
    executed = nbformat.read(ipynb, as_version=4)
    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(executed)
    write_text(html, strip_remote_scripts(body))
    return html


def versions() -> dict[str, str]:
    """Versions of Python, the platform and the packages the results depend on."""
    from importlib import metadata

    out = {"python": platform.python_version(), "platform": platform.platform(terse=True)}
    for pkg in ("blobhelpers", "numpy", "scipy", "astropy", "matplotlib", "pandas", "scikit-learn",
                "tensorflow-cpu", "tensorflow", "keras", "dvc", "papermill", "jupytext", "nbconvert"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=project_root(), timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=project_root(), timeout=10).stdout.strip()
        if commit:
            out["git commit"] = commit + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def _flatten(d: dict, prefix: str = "") -> list[tuple[str, object]]:
    rows = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            rows.extend(_flatten(v, key + "."))
        else:
            rows.append((key, v))
    return rows


def header_markdown(title: str, params: dict, sections: list[str]) -> str:
    """Markdown block: title, run date, the parameters of *sections* and package versions."""
    import datetime as dt

    lines = [f"# {title}", "", f"Generated {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC} "
             f"by `{Path(sys.argv[0]).name or 'python'}`.", "", "**Parameters** (from params.yaml)", "",
             "| parameter | value |", "|---|---|"]
    for sec in sections:
        for k, v in _flatten(params.get(sec, {}), sec + "."):
            lines.append(f"| `{k}` | `{v}` |")
    lines += ["", "**Versions**", "", "| package | version |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in versions().items()]
    return "\n".join(lines)


def show_header(title: str, params: dict, sections: list[str]) -> None:
    """Display :func:`header_markdown` in a notebook."""
    from IPython.display import Markdown, display

    display(Markdown(header_markdown(title, params, sections)))


def main(argv=None) -> int:
    """``python -m blobhelpers.core.report NOTEBOOK --params P --html H [--ipynb I]``: what a DVC stage runs.

    The same as ``blobhelpers run-notebook``, without importing the command-line interface, so
    that a stage's code dependencies are this module and its notebook's imports only.
    """
    import argparse

    from .errors import run_guarded

    p = argparse.ArgumentParser(prog="python -m blobhelpers.core.report",
                                description="build, execute (papermill) and render (HTML) a stage notebook")
    p.add_argument("notebook", type=Path)
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--html", type=Path, required=True)
    p.add_argument("--ipynb", type=Path, default=None)
    p.add_argument("--kernel", default=None)
    a = p.parse_args(argv)

    def _run(a):
        run_notebook(a.notebook, a.params, a.html, a.ipynb, kernel=a.kernel)
        print(str(a.html))

    return run_guarded(_run, a, "blobhelpers run-notebook")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
