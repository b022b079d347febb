"""Build, execute and render the stage notebooks; the header every report starts with.

``run_notebook`` is what each DVC stage runs: the jupytext py:percent source is converted
to ``.ipynb``, executed by papermill with the params.yaml sections the notebook declares in
its ``parameters`` cell injected (``-f params.yaml`` semantics: each top-level section becomes
a variable), and rendered to a self-contained HTML report without code cells.

What a reader gets, and what the console shows:

* one line when a stage starts (with the previous run's duration, if known) and one when it
  ends, with its duration; nothing else unless something fails;
* the kernel talks over local IPC sockets (no "running over TCP without encryption" warning),
  TensorFlow's C++ log is set to warnings-and-worse off (``TF_CPP_MIN_LOG_LEVEL=2``, unless the
  caller set it) and the kernel's own stderr (library start-up chatter that logging levels cannot
  reach) goes to ``<ipynb>.stderr.log`` next to the executed notebook instead of the terminal;
  the executed ``.ipynb`` keeps every output, stderr included;
* the HTML report has no stderr boxes (counted on the console, kept in the ``.ipynb``), no object
  reprs such as ``PosixPath('/abs/path')``, no absolute path of the machine (the project root
  becomes ``.``), no random cell ids or per-step timings, one title; errors are never hidden:
  a failing cell fails the stage with its traceback.

Script tags that would load anything from the internet (MathJax, require.js CDNs) are removed,
so the report opens offline.
"""

from __future__ import annotations

import ast
import html as _html
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from blobhelpers.core.deps import stage_code
from blobhelpers.core.errors import InputError, run_guarded
from blobhelpers.core.headlines import headline
from blobhelpers.core.page import stage_links, wrap_page
from blobhelpers.core.paths import atomic_path, project_root, write_json, write_text
from blobhelpers.core.stagecard import StageCard
from blobhelpers.core.tables import cell_text, format_duration, install
from blobhelpers.core.verdicts import verdict_box_html

__all__ = ["timing", "write_metrics", "split_volatile", "run_notebook", "versions", "header_markdown", "show_header", "strip_remote_scripts",
           "notebook_parameters", "clean_for_report", "compress_images", "compact_image", "arrange_for_report", "show_verdict", "relative_paths",
           "metrics_link"]

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


def notebook_parameters(nb) -> list[str] | None:
    """Names assigned in the notebook's cell tagged ``parameters`` (None when it has none).

    Only these sections of params.yaml are injected, so papermill never warns about an
    unknown parameter, and what a notebook receives is what its parameters cell declares.

    Examples
    --------
    >>> import nbformat
    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
    ...     "base = {'seed': 0}\\nsvm: dict = {}\\na, b = 1, 2", metadata={"tags": ["parameters"]})])
    >>> notebook_parameters(nb)
    ['base', 'svm', 'a', 'b']
    """
    for cell in nb.cells:
        if cell.cell_type != "code" or "parameters" not in cell.get("metadata", {}).get("tags", []):
            continue
        src = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        names: list[str] = []

        def add(target):
            if isinstance(target, ast.Name):
                names.append(target.id)
            elif isinstance(target, (ast.Tuple, ast.List)):
                for t in target.elts:
                    add(t)

        for node in ast.parse(src).body:
            for target in (node.targets if isinstance(node, ast.Assign) else
                           [node.target] if isinstance(node, ast.AnnAssign) else []):
                add(target)
        return list(dict.fromkeys(names))
    return None


# Object reprs that say nothing to a reader and carry machine paths: an expression cell ending in
# ``write_text(...)`` shows ``PosixPath('/abs/plots/x.csv')``; ``<Foo object at 0x7f...>``.
_PATH_REPR = re.compile(r"""\b(?:Posix|Windows|Pure(?:Posix|Windows)?)?Path\((['"])(.*?)\1\)""")
_OBJECT_REPR = re.compile(r"^\s*[\[\(]?\s*(?:<[^<>]* at 0x[0-9a-f]+>|(?:Posix|Windows)?Path\(['\"][^'\"]*['\"]\))"
                          r"(?:\s*,\s*(?:<[^<>]* at 0x[0-9a-f]+>|(?:Posix|Windows)?Path\(['\"][^'\"]*['\"]\)))*"
                          r"\s*,?\s*[\]\)]?\s*$")
# Keras progress lines carry wall-clock timings ("20/20 - 7s - 372ms/step - loss: ..."): volatile.
_KERAS_TIMING = re.compile(r"(\d+/\d+)(?: [━─=>.]+)?\s+-?\s*\d+(?:\.\d+)?[mµu]?s(?:\s+-)?\s+\d+(?:\.\d+)?[mµu]?s/step")
_WIDGET = "application/vnd.jupyter.widget-view+json"


def clean_for_report(nb) -> dict:
    """Make an executed notebook fit for the HTML report, in place; return what was dropped.

    * stderr stream outputs are removed (library chatter; the executed ``.ipynb`` keeps them);
    * ``execute_result`` outputs that are only object reprs (paths, ``<... at 0x...>``) are
      removed, and remaining ``PosixPath('x')`` reprs in text become ``x``;
    * Keras per-step timings are removed from progress lines;
    * cell ids become their position (papermill and jupytext draw random ones);
    * progress widgets (tqdm's ``application/vnd.jupyter.widget-view+json`` outputs) and the
      notebook's widget state are removed: they carry random model ids and elapsed times, so
      a rerun with identical results would otherwise give a different report.

    Error outputs are kept: papermill fails the stage on them anyway.

    Examples
    --------
    >>> import nbformat
    >>> c = nbformat.v4.new_code_cell("x")
    >>> c.outputs = [nbformat.v4.new_output("stream", name="stderr", text="I0000 oneDNN..."),
    ...              nbformat.v4.new_output("execute_result", data={"text/plain": "PosixPath('/a/b.csv')"}),
    ...              nbformat.v4.new_output("stream", name="stdout", text="wrote PosixPath('/a/c.csv')")]
    >>> nb = nbformat.v4.new_notebook(cells=[c])
    >>> clean_for_report(nb)
    {'stderr': 1, 'reprs': 1}
    >>> [o.get("text") for o in nb.cells[0].outputs]
    ['wrote /a/c.csv']
    """
    dropped = {"stderr": 0, "reprs": 0}
    nb.get("metadata", {}).pop("widgets", None)
    for i, cell in enumerate(nb.cells):
        if "id" in cell:
            cell["id"] = f"cell-{i}"
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            if out.output_type == "stream" and out.name == "stderr":
                dropped["stderr"] += 1
                continue
            if out.output_type in ("display_data", "execute_result") and _WIDGET in out.get("data", {}):
                dropped["widgets"] = dropped.get("widgets", 0) + 1
                continue
            if out.output_type == "execute_result":
                data = out.get("data", {})
                if set(data) <= {"text/plain"} and _OBJECT_REPR.match(data.get("text/plain", "")):
                    dropped["reprs"] += 1
                    continue
                if "text/plain" in data:
                    data["text/plain"] = _PATH_REPR.sub(r"\2", data["text/plain"])
            if out.output_type == "stream":
                out["text"] = _KERAS_TIMING.sub(r"\1", _PATH_REPR.sub(r"\2", out["text"]))
            kept.append(out)
        cell["outputs"] = kept
    return dropped


#: An embedded PNG larger than this is re-encoded as JPEG for the report when that is at least half the size.
IMAGE_BYTES = 150_000


def compact_image(raw: bytes, jpeg_over: int = IMAGE_BYTES, quality: int = 75, max_width: int = 1100,
                  keep_under: int = 20_000) -> tuple[str, bytes]:
    """``(mime, bytes)``: the smallest faithful encoding of the PNG *raw* for a page.

    Images wider than *max_width* pixels (wider than the page shows them) are narrowed. A PNG
    over *keep_under* bytes is re-encoded with a 256-colour palette (matplotlib figures use
    few colours, and a colour map has 256: a third of the bytes, no visible change). One over
    *jpeg_over* bytes (noise images: difference images, subframes, saliency maps barely
    compress) also gets a JPEG at *quality*, kept when it is at most half the palette PNG.
    Deterministic: the same PNG gives the same bytes. This is the one re-encoder of the
    reports (:func:`compress_images`) and of the article.

    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO(); Image.new("RGB", (40, 30), "white").save(buf, format="PNG")
    >>> compact_image(buf.getvalue())[0]
    'image/png'
    """
    import io

    from PIL import Image

    if len(raw) <= keep_under:
        return "image/png", raw
    with Image.open(io.BytesIO(raw)) as im:
        im = im.convert("RGB")
        if im.width > max_width:
            im = im.resize((max_width, round(im.height * max_width / im.width)), Image.LANCZOS)
        buf = io.BytesIO()
        im.quantize(256, method=Image.Quantize.MEDIANCUT).save(buf, format="PNG", optimize=True)
        best = ("image/png", buf.getvalue()) if buf.tell() < len(raw) else ("image/png", raw)
        if len(raw) > jpeg_over:
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=quality, optimize=True)
            if buf.tell() * 2 <= len(best[1]):
                best = ("image/jpeg", buf.getvalue())
    return best


def compress_images(nb, limit: int = IMAGE_BYTES, quality: int = 75, max_width: int = 1100) -> int:
    """Re-encode the embedded PNG outputs of *nb* in place with :func:`compact_image`; return how many
    became JPEG (noise images over *limit* bytes: a sixth of the bytes).

    Line plots stay PNG (palette PNG: small and sharp). The saved PNGs under ``plots/`` are not touched.
    """
    import base64

    n = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = out.get("data", {})
            png = data.get("image/png")
            if not png:
                continue
            raw = base64.b64decode(png)
            mime, new = compact_image(raw, limit, quality, max_width)
            if new is raw:
                continue
            del data["image/png"]
            data[mime] = base64.b64encode(new).decode()
            if mime == "image/jpeg":
                out.get("metadata", {}).pop("image/png", None)
                n += 1
    return n


def relative_paths(html: str, root: str | Path) -> str:
    """Replace the project root (and the home folder) in *html* by ``.`` (and ``~``).

    Examples
    --------
    >>> relative_paths("see /home/u/proj/plots/a.png and /home/u/proj", "/home/u/proj")
    'see ./plots/a.png and .'
    """
    roots = {str(Path(root)), str(Path(root).resolve())}
    for r in sorted(roots, key=len, reverse=True):
        if len(r) > 1:
            html = re.sub(re.escape(r) + r"(?![\w.-])", ".", html)
    home = str(Path.home())
    if len(home) > 1:
        html = re.sub(re.escape(home) + r"(?![\w.-])", "~", html)
    return html


def _relative(path: Path, root: Path) -> str | None:
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:  # a notebook outside the project: no stage label
        return None


def _kernel_manager_class(stderr_log: Path, ipc_dir: str, notebook: str | None = None):
    """A kernel manager that starts the kernel quietly: IPC sockets, TF log level, stderr to a file."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import CaselessStrEnum, default

    class QuietKernelManager(AsyncKernelManager):
        # Local IPC sockets instead of TCP on localhost: no "running over TCP without encryption".
        transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

        @default("ip")
        def _ip_default(self):  # short socket paths in a private temporary folder
            return os.path.join(ipc_dir, "k")

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            env = dict(kw.get("env") or os.environ)
            env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow C++: errors only
            env.pop("MPLBACKEND", None)  # keep inline figures
            if notebook:  # which stage this is: its report is labelled with its own code's commit
                env[NOTEBOOK_ENV] = notebook
            kw["env"] = env
            # The kernel echoes what is written to its stderr (TensorFlow's start-up lines, which
            # no log level reaches) to the terminal: send that copy to a log file instead.
            log = open(stderr_log, "ab")  # noqa: SIM115 (the child has its copy; closed here)
            kw["stdout"] = kw["stderr"] = log
            try:
                return await super()._async_launch_kernel(kernel_cmd, **kw)
            finally:
                log.close()

    return QuietKernelManager


def _log(msg: str) -> None:
    print(f"[report] {msg}", flush=True)


def _cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and of every finished, waited-for descendant.

    The kernel is such a descendant once papermill has shut it down, and so are the worker processes
    it waited for: the difference around a stage is the stage's CPU time on all cores.
    """
    import resource

    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))


def _cpu_note(wall: float, cpu: float) -> str:
    """``", CPU 9 min 10 s = 1.7 cores"``: how much of the machine a stage used."""
    return f", CPU {format_duration(cpu)} = {cpu / wall:.1f} cores" if wall > 0 and cpu > 0 else ""


def _previous_duration(ipynb: Path) -> float | None:
    """How long the last run of this notebook took (papermill records it in the executed .ipynb)."""
    try:
        import json

        return float(json.loads(ipynb.read_text())["metadata"]["papermill"]["duration"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


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
    kernel = kernel or _kernel_name()
    if not nb.metadata.get("kernelspec"):  # a bare .py: papermill needs a kernel and a language
        nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    declared = notebook_parameters(nb)
    injected = {k: v for k, v in parameters.items() if k in (declared or ())}  # no cell: nothing
    if "pipeline_run" in (declared or ()):  # only the runner writes the stage's outputs (core.scratch)
        injected["pipeline_run"] = True
    for i, cell in enumerate(nb.cells):  # stable cell ids (jupytext draws random ones)
        cell["id"] = f"cell-{i}"
    built = ipynb.with_suffix(".src.ipynb")
    with atomic_path(built) as tmp:
        nbformat.write(nb, tmp)

    name = source.stem
    previous = _previous_duration(ipynb)
    _log(f"{name}: started" + (f" (last run took {format_duration(previous)})" if previous else ""))
    t0, cpu0 = time.perf_counter(), _cpu_seconds()
    stderr_log = ipynb.with_suffix(".stderr.log")
    stderr_log.unlink(missing_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix="bh-kernel-") as ipc_dir, atomic_path(ipynb) as tmp:
            papermill.execute_notebook(str(built), str(tmp), parameters=injected, kernel_name=kernel,
                                       cwd=str(cwd or root), progress_bar=False, log_output=False,
                                       execution_timeout=timeout,
                                       kernel_manager_class=_kernel_manager_class(stderr_log, ipc_dir, _relative(source, root)))
    except BaseException:
        _log(f"{name}: FAILED after {format_duration(time.perf_counter() - t0)} (executed notebook: {ipynb}; "
             f"kernel stderr: {stderr_log})")
        raise
    executed = nbformat.read(ipynb, as_version=4)
    dropped = clean_for_report(executed)
    compress_images(executed)
    arrange_for_report(executed)
    exporter = HTMLExporter(template_name="basic")  # the cells only: the page and its small stylesheet are ours
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(executed)
    page = wrap_page(body, stage_links(root / "notebooks"), here=name)
    write_text(html, relative_paths(strip_remote_scripts(page), root))
    note = f"; {dropped['stderr']} stderr outputs left out of the report (kept in {ipynb})" if dropped["stderr"] else ""
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    _log(f"{name}: done in {format_duration(wall)}{_cpu_note(wall, cpu)} -> {html}{note}")
    return html


def versions() -> dict[str, str]:
    """Versions of Python, the platform and the packages the results depend on."""
    from importlib import metadata

    # The OS and CPU architecture, not the kernel build (which differs between machines of one kind
    # and would make a fresh clone's rerun rewrite every report).
    out = {"python": platform.python_version(), "platform": f"{platform.system()} {platform.machine()}"}
    for pkg in ("blobhelpers", "numpy", "scipy", "astropy", "matplotlib", "pandas", "scikit-learn",
                "tensorflow-cpu", "tensorflow", "keras", "dvc", "papermill", "jupytext", "nbconvert"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    nb = os.environ.get(NOTEBOOK_ENV)
    commit = code_commit(paths=stage_files(nb) if nb else None)
    if commit:
        out["code commit"] = commit
    return out


#: Set by :func:`run_notebook` in the kernel's environment: the notebook (relative to the project root).
NOTEBOOK_ENV = "BLOBHELPERS_NOTEBOOK"


def stage_files(notebook: str) -> list[str]:
    """The tracked files a stage running *notebook* executes: the notebook and its code closure
    (:func:`blobhelpers.core.deps.stage_code`, the same list as the stage's deps in dvc.yaml)."""

    return [notebook, *stage_code(project_root() / notebook, project_root())]


#: What the results depend on: the last commit touching one of these labels a report. Outputs
#: (reports, metrics, dvc.lock) are left out, so committing the results of a run does not change
#: the label, and a rerun of that commit reproduces its reports byte for byte.
CODE_PATHS = ("blobhelpers", "notebooks", "params.yaml", "dvc.yaml", "pyproject.toml", "requirements.lock",
              "profiles", "data.dvc")


def code_commit(root: str | Path | None = None, paths=None) -> str:
    """Short hash of the last commit that touched *paths* (default :data:`CODE_PATHS`), with a note
    if they have uncommitted changes; "" outside a git checkout.

    A stage's report uses the stage's own files (:func:`stage_files`): DVC reruns a stage exactly
    when those (or its parameters, listed in the report) change, so a stage that is not rerun
    keeps a label that a full rerun from a clean checkout gives again.
    """
    root = Path(root) if root is not None else project_root()
    specs = [f":(top){p}" for p in (paths or CODE_PATHS)]  # relative to the checkout's top, wherever *root* is
    try:
        commit = subprocess.run(["git", "log", "-1", "--format=%h", "--", *specs], capture_output=True,
                                text=True, cwd=root, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *specs],
                               capture_output=True, text=True, cwd=root, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    if not commit:
        return ""
    return commit + (" (with uncommitted changes)" if dirty else "")


def _flatten(d: dict, prefix: str = "") -> list[tuple[str, object]]:
    rows = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            rows.extend(_flatten(v, key + "."))
        else:
            rows.append((key, v))
    return rows


#: Marks the provenance block (parameters, versions, commit): :func:`arrange_for_report` moves it to the end.
PROVENANCE_CLASS = "bh-provenance"
#: The class of the verdict box (:func:`show_verdict`; :mod:`blobhelpers.core.verdicts`).
VERDICT_CLASS = "bh-verdict"


def header_markdown(title: str, params: dict, sections: list[str]) -> str:
    """The provenance block: the parameters of *sections*, the package versions and the code commit
    (:func:`code_commit`), as a collapsed HTML ``<details>`` (the report shows it at the bottom).

    *title* is kept for the callers' sake; the report's title is the notebook's first heading.
    """

    e = _html.escape
    # No run date or program name: a rerun with the same results must give the same report.
    rows = [f"<tr><td><code>{e(k)}</code></td><td><code>{e(cell_text(v))}</code></td></tr>"
            for sec in sections for k, v in _flatten(params.get(sec, {}), sec + ".")]
    vers = [f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in versions().items()]
    parts = [f'<details class="{PROVENANCE_CLASS}" id="provenance"><summary>Parameters (params.yaml: '
             f'{e(", ".join(sections) or "none")}), versions and code commit</summary>']
    if rows:
        parts.append('<table class="bh-table"><thead><tr><th>parameter</th><th>value</th></tr></thead><tbody>'
                     + "".join(rows) + "</tbody></table>")
    parts.append('<table class="bh-table"><thead><tr><th>package</th><th>version</th></tr></thead><tbody>'
                 + "".join(vers) + "</tbody></table></details>")
    return "".join(parts)


def show_header(title: str, params: dict, sections: list[str]) -> None:
    """Display the provenance block (:func:`header_markdown`; moved to the report's end when rendered)
    and make DataFrames display as readable tables (:func:`blobhelpers.core.tables.install`)."""
    from IPython.display import HTML, display

    install()
    display(HTML(header_markdown(title, params, sections)))


def metrics_link(stem: str) -> None:
    """Display links to the stage's metrics files instead of dumping them in the report."""
    from IPython.display import HTML, display

    display(HTML(f'<p class="bh-src">Every number this stage measured: <a href="../metrics/{stem}.json">'
                 f'metrics/{stem}.json</a> (headline; <code>dvc metrics show</code>) and '
                 f'<a href="../metrics/details/{stem}.json">metrics/details/{stem}.json</a>.</p>'))


def show_verdict(card: StageCard, root: str | Path | None = None) -> None:
    """Display the stage's verdict box (:mod:`blobhelpers.core.verdicts`), read from the metrics files it
    just wrote; the report moves it under the title (:func:`arrange_for_report`)."""
    from IPython.display import HTML, display

    box = verdict_box_html(card, Path(root if root is not None else project_root()) / "metrics")
    if box:
        display(HTML(box))


def arrange_for_report(nb, verdict_html: str = "") -> None:
    """The report's order, in place: the title, the verdict box, the notebook's content, and the
    provenance block (parameters and versions, collapsed) last.

    The verdict box is the output of the notebook's :func:`show_verdict` (its last cell, once the
    metrics are written), or *verdict_html* when given.

    >>> import nbformat
    >>> prov = nbformat.v4.new_code_cell("show_header()")
    >>> prov.outputs = [nbformat.v4.new_output("display_data", data={"text/html": '<details class="bh-provenance">'})]
    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T"), prov,
    ...                                      nbformat.v4.new_markdown_cell("## Results")])
    >>> arrange_for_report(nb, "<section>V</section>")
    >>> [c.cell_type for c in nb.cells], nb.cells[1].outputs[0]["data"]["text/html"]
    (['markdown', 'code', 'code', 'markdown', 'code'], '<section>V</section>')
    >>> "bh-provenance" in nb.cells[-1].outputs[0]["data"]["text/html"]
    True
    """
    import nbformat

    def is_prov(out):
        return PROVENANCE_CLASS in str(out.get("data", {}).get("text/html", ""))

    prov = []  # the provenance outputs move; whatever else their cells show stays in place
    for cell in nb.cells:
        if cell.cell_type == "code" and any(is_prov(o) for o in cell.get("outputs", [])):
            prov += [o for o in cell.outputs if is_prov(o)]
            cell.outputs = [o for o in cell.outputs if not is_prov(o)]
    if prov:
        last = nbformat.v4.new_code_cell("")
        last.outputs = prov
        nb.cells.append(last)
    def is_box(out):
        return VERDICT_CLASS in str(out.get("data", {}).get("text/html", ""))

    boxes = []  # the verdict box the notebook showed last (show_verdict) moves under the title
    for cell in list(nb.cells):
        if cell.cell_type == "code" and any(is_box(o) for o in cell.get("outputs", [])):
            boxes += [o for o in cell.outputs if is_box(o)]
            cell.outputs = [o for o in cell.outputs if not is_box(o)]
            if not cell.outputs:
                nb.cells.remove(cell)
    if verdict_html:
        boxes = [nbformat.v4.new_output("display_data", data={"text/html": verdict_html})]
    if boxes:
        first = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
                      and c.source.lstrip().startswith("# ")), -1)
        box = nbformat.v4.new_code_cell("")
        box.outputs = boxes[-1:]
        nb.cells.insert(first + 1, box)
    for i, cell in enumerate(nb.cells):
        if "id" in cell:
            cell["id"] = f"cell-{i}"


def main(argv=None) -> int:
    """``python -m blobhelpers.core.report NOTEBOOK --params P --html H [--ipynb I]``: what a DVC stage runs.

    The same as ``blobhelpers run-notebook``, without importing the command-line interface, so
    that a stage's code dependencies are this module and its notebook's imports only.
    """
    import argparse

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

    return run_guarded(_run, a, "blobhelpers run-notebook")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


#: Metric keys that vary from run to run (timings, speeds): kept out of ``metrics/`` so that a rerun
#: with identical results changes no tracked file; they go to ``build/timings/<stage>.json``.
VOLATILE_KEY = re.compile(r"(seconds|_per_s(_|$)|per_second|wall_s|_time_s$)")


def split_volatile(metrics: dict) -> tuple[dict, dict]:
    """``(stable, volatile)``: *metrics* with timing/speed keys (at any depth) moved to the second dict.

    >>> split_volatile({"auc": 0.9, "stage_seconds": 3.2, "dev": {"seconds": 1.0, "n": 4}})
    ({'auc': 0.9, 'dev': {'n': 4}}, {'stage_seconds': 3.2, 'dev.seconds': 1.0})
    """
    stable, volatile = {}, {}

    def walk(src, dst, prefix):
        for k, v in src.items():
            if VOLATILE_KEY.search(str(k)):
                volatile[prefix + str(k)] = v
            elif isinstance(v, dict):
                dst[k] = {}
                walk(v, dst[k], f"{prefix}{k}.")
            else:
                dst[k] = v

    walk(metrics, stable, "")
    return stable, volatile


def write_metrics(card: StageCard | str, metrics: dict, root: str | Path | None = None, n_headline: int = 12) -> Path:
    """Write a stage's numbers in three places, so that each is read by the right reader.

    * ``metrics/<stem>.json`` (the DVC metric): the stage's headline numbers only
      (its card's ``headlines``, at most *n_headline*), so that
      ``dvc metrics show`` / ``dvc metrics diff`` read well;
    * ``metrics/details/<stem>.json`` (a stage output, not a DVC metric): everything else the
      stage measured (intervals, counts, strata);
    * ``build/timings/<stem>.json`` (not in git): timings and speeds, which differ on every run.

    A rerun that gives the same results rewrites the first two with the same bytes. Given a stem
    (no card), all the stable numbers go to ``metrics/<stem>.json``.
    """
    stem = card.stem if isinstance(card, StageCard) else str(card)
    root = Path(root) if root is not None else project_root()
    stable, volatile = split_volatile(metrics)
    if volatile:
        write_json(root / "build" / "timings" / f"{stem}.json", volatile)
    if isinstance(card, StageCard):
        write_json(root / "metrics" / "details" / f"{stem}.json", stable)
        stable = dict(headline(card.headlines, stable, n=n_headline))
    return write_json(root / "metrics" / f"{stem}.json", stable)


def timing(label: str, seconds: float) -> None:
    """Report a duration on stderr (the executed notebook and the stage's log keep it; the HTML does not).

    Timings differ on every run; a report that printed them would change on every rerun.
    """
    print(f"[timing] {label}: {seconds:.1f} s", file=sys.stderr, flush=True)
