"""Lint the HTML reports (and the executed notebooks behind them) for what a reader should never see.

A report is what a person reads; the checks below fail on what makes it look broken or leak
the machine it was built on. Each check has a name, used in every :class:`Problem` it reports:

``empty_section``
    a heading (``h1``-``h6``) followed by a heading of the same or a higher level, or by the
    end of the document, with nothing visible in between (text, image, table, svg, details).
    nbconvert's pilcrow anchor links (``¶``) do not count as content.
``raw_repr``
    visible text holding a raw Python printout: a dict (``{'wfc': 49, ...}``, ``{"model": ...}``),
    pandas' ``N rows x M columns`` footer, an object repr (``<... at 0x...>``, ``PosixPath(``,
    ``array([``, ``dtype=``, ``<Figure size ...>``, ``<Axes: ...>``, ``Text(0.5, ...)``).
    Code written on purpose in a markdown cell (``<code>``, ``<pre>``) is exempt.
``nan_in_table``
    a table cell (``<td>``) reading ``nan``, ``NaN``, ``None``, ``<NA>`` or ``NaT``; a cell
    whose text is all inside ``<code>`` (a parameter value written as a literal) is exempt.
``machine_path``
    an absolute path of the machine (``/home/``, ``/root/``, ``/tmp/``, ``/work/``, ``/Users/``,
    ``/private/var``, ``C:\\``, ``site-packages``) in visible text or an attribute (``data:``
    URIs excepted).
``external_url``
    an ``http(s)://`` URL in ``src=``, ``href=``, ``url(...)``, a CSS ``@import`` or a script's
    ``import``: a report loads nothing and links nowhere outside itself (prefixes in
    *allow_urls* excepted, none by default); a ``<script src=...>`` is flagged whatever it points to.
``size``
    a report over its byte budget (or, for :func:`lint_reports`, a folder over its total budget).
``float_count``
    a table column whose every value is an integral float (``2000.0``), at least one of them
    above 1 in magnitude: counts shown as floats.
``no_image`` (:func:`lint_notebook`, on an executed ``.ipynb``)
    a code cell whose source calls a plotting function (:data:`PLOT_CALLS`) but whose outputs
    hold no image (``image/png``, ``image/svg+xml``, ``image/jpeg``, or HTML with ``<img`` or
    ``<svg``). A cell tagged ``no-figure`` (``metadata.tags``) is exempt: tag the cells that
    call a plotting function on purpose without showing a figure (a figure only saved for
    ``dvc plots``, a plot that is skipped when there is no data).

Command line::
    python -m blobhelpers.core.reportlint reports/*.html build/notebooks/*.ipynb [--budget BYTES]

prints one line per problem (``file: check: message``) and exits with 0 when there is none,
1 when there are some, 2 when a file is missing or unreadable. A folder argument is linted
with :func:`lint_reports`.

Examples
--------
>>> [p.check for p in lint_html("<h1>Title</h1><h2>Empty</h2><h2>Full</h2><p>text</p>")]
['empty_section']
>>> lint_html("<h1>Title</h1><p>Read <a href='./02_train.html'>stage 02</a>.</p>")
[]
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from blobhelpers.core.errors import InputError, run_guarded

__all__ = ["Problem", "CHECKS", "PLOT_CALLS", "NO_FIGURE_TAG", "lint_html", "lint_notebook", "lint_reports",
           "lint_paths", "main"]

#: Every check's name, in the order they are described in the module docstring.
CHECKS = ("empty_section", "raw_repr", "nan_in_table", "machine_path", "external_url", "size", "float_count",
          "no_image")

#: Source patterns of a notebook cell that draws a figure (:func:`lint_notebook`).
PLOT_CALLS = (
    r"\bplt\.(?!close\b|ioff\b|ion\b|rc\b|rcdefaults\b|switch_backend\b|get_cmap\b|imread\b|Circle\b)\w+\(",
    r"\.plot\(",
    r"\bimshow\(",
    r"\bsavefig\(",
    r"\bsave_figure\(",
    r"\bshow_figure\(",
    r"\bplot_\w+\(",
    r"\bshow_(?!header\b|in_ginga\b|verdict\b)\w+\(",
)

#: A cell with this tag in ``metadata.tags`` may call a plotting function without showing a figure.
NO_FIGURE_TAG = "no-figure"

#: Default byte budgets: one report, and a whole reports/ folder.
BUDGET_BYTES = 1_500_000
TOTAL_BUDGET_BYTES = 5 * 1024 * 1024  # 5 MiB: what `du -sh reports` shows as 5.0M

_HEADINGS = {f"h{i}": i for i in range(1, 7)}
_CONTENT_TAGS = {"img", "table", "svg", "details", "video", "canvas", "object", "iframe"}
_HIDDEN_TAGS = {"style", "script", "template", "noscript"}
_VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_BLOCK_TAGS = {"p", "div", "pre", "li", "ul", "ol", "table", "tr", "td", "th", "thead", "tbody", "br", "hr",
               "h1", "h2", "h3", "h4", "h5", "h6", "details", "summary", "blockquote", "section", "main", "body",
               "title", "dl", "dt", "dd", "figure", "figcaption", "caption", "svg"}
_URL_ATTRS = {"src", "href", "xlink:href", "action", "poster", "data", "background", "formaction", "srcset"}

_RAW_REPRS = (
    (re.compile(r"\{\s*['\"][^'\"\n]{1,80}['\"]\s*:"), "a raw dict printout"),
    (re.compile(r"\[?\b\d[\d,]* rows\s*[x×]\s*\d[\d,]* columns\]?"), "pandas' rows x columns footer"),
    (re.compile(r"<[^<>\n]{1,200} at 0x[0-9a-fA-F]+>"), "an object repr"),
    (re.compile(r"\b(?:Posix|Windows|PurePosix|PureWindows)Path\("), "a Path repr"),
    (re.compile(r"\barray\(\["), "a numpy array repr"),
    (re.compile(r"\bdtype(?:=|: ?[a-z]+\d*\b)"), "a dtype in a repr"),
    (re.compile(r"<Figure size \d+(?:\.\d+)?x\d+(?:\.\d+)? with \d+ Axes>"), "a figure repr (no image shown)"),
    (re.compile(r"<(?:Axes|AxesSubplot)\b[^<>\n]*>"), "a matplotlib Axes repr"),
    (re.compile(r"\bText\(-?\d+(?:\.\d+)?, -?\d+(?:\.\d+)?, "), "a matplotlib Text repr"),
)
_NAN_CELLS = {"nan", "NaN", "None", "<NA>", "NaT"}
_MACHINE_PATH = re.compile(r"(?<![\w.~-])(?:/home/|/root/|/tmp/|/work/|/Users/|/private/var\b)"
                           r"|\b[A-Za-z]:\\|site-packages")
_EXTERNAL = re.compile(r"^\s*(?:https?:)?//", re.IGNORECASE)
_CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)""", re.IGNORECASE)
_CSS_IMPORT = re.compile(r"""@import\s+['"]([^'"]+)""", re.IGNORECASE)  # the url(...) form: _CSS_URL
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
_SCRIPT_IMPORT = re.compile(r"""(?:\bimport\s*\(?\s*|\bfrom\s+)['"]((?:https?:)?//[^'"]+)""", re.IGNORECASE)
_INTEGRAL_FLOAT = re.compile(r"^-?\d{1,3}(?:,?\d{3})*\.0+$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a report.

    Attributes
    ----------
    file : str
        The report (or notebook, or folder) it was found in; ``"<string>"`` for HTML text.
    check : str
        The check's name (one of :data:`CHECKS`).
    message : str
        What is wrong and where (the line of the HTML, the cell of the notebook).
    excerpt : str
        The offending text, shortened to one line (may be empty).
    """

    file: str
    check: str
    message: str
    excerpt: str = ""

    def __str__(self) -> str:
        return f"{self.file}: {self.check}: {self.message}" + (f" -- {self.excerpt!r}" if self.excerpt else "")


def _excerpt(text: str, start: int = 0, end: int | None = None, width: int = 80) -> str:
    """*text* around ``[start, end)`` on one line, at most about *width* characters."""
    end = len(text) if end is None else end
    pad = max(0, (width - (end - start)) // 2)
    a, b = max(0, start - pad), min(len(text), end + pad)
    out = " ".join(text[a:b].split())
    if len(out) > width:
        out = out[:width - 1] + "…"
    return out


class _Scanner(HTMLParser):
    """One pass over the HTML: the heading/content sequence, visible text, table cells, URLs, paths."""
    def __init__(self, allow_urls=()):
        super().__init__(convert_charrefs=True)
        self.allow_urls = tuple(allow_urls)
        self.events: list[tuple] = []  # ("h", level, title, line) or ("c", line)
        self.texts: list[tuple[str, int, bool]] = []  # (text, line, exempt from raw_repr)
        self.nan_cells: list[tuple[str, int]] = []
        self.tables: list[list[list[tuple[str, str]]]] = []  # per table: rows of (tag, text) cells
        self.urls: list[tuple[str, str, int]] = []  # (where, url, line)
        self.paths: list[tuple[str, int]] = []  # attribute values holding a machine path
        self.hidden = 0
        self.svg = 0
        self.code = 0
        self.pre = 0
        self.heading: list | None = None  # [level, title parts, line]
        self.divs: list[bool] = []  # one per open <div>: is it an author-written markdown cell?
        self.cell: list | None = None  # [tag, parts (text, in code), line] of the open <td>/<th>
        self.row: list[tuple[str, str]] | None = None
        self.table_stack: list[list[list[tuple[str, str]]]] = []
        self.block: list[str] = []
        self.block_line = 1
        self.block_exempt = False

    # -- helpers ---------------------------------------------------------------------------
    @property
    def _line(self) -> int:
        return self.getpos()[0]

    def _in_markdown_cell(self) -> bool:
        return any(self.divs)

    def _flush(self) -> None:
        text = "".join(self.block)
        if text.strip():
            self.texts.append((text, self.block_line, self.block_exempt))
        self.block, self.block_exempt = [], False

    def _url(self, where: str, value: str) -> None:
        if _EXTERNAL.match(value) and not value.strip().startswith(self.allow_urls or ("\0",)):
            self.urls.append((where, value.strip(), self._line))

    def _css(self, css: str, where: str) -> None:
        css = _CSS_COMMENT.sub("", css)
        for rx in (_CSS_URL, _CSS_IMPORT):
            for m in rx.finditer(css):
                self._url(where, m.group(1))

    # -- parser callbacks ------------------------------------------------------------------
    def handle_starttag(self, tag, attrs):
        self._attrs(tag, attrs)
        if tag in _BLOCK_TAGS:
            self._flush()
        if tag in _HIDDEN_TAGS:
            self.hidden += 1
            return
        if tag in _HEADINGS and self.heading is None:
            self.heading = [_HEADINGS[tag], [], self._line]
        elif tag in _CONTENT_TAGS and self.heading is None:
            self.events.append(("c", self._line))
        if tag == "svg":
            self.svg += 1
        elif tag == "code":
            self.code += 1
        elif tag == "pre":
            self.pre += 1
        elif tag == "div":
            cls = dict(attrs).get("class") or ""
            self.divs.append("jp-MarkdownCell" in cls.split())
        elif tag == "table":
            self.table_stack.append([])
        elif tag == "tr" and self.table_stack:
            self.row = []
            self.table_stack[-1].append(self.row)
        elif tag in ("td", "th"):
            self.cell = [tag, [], self._line]
        if tag in _VOID_TAGS:
            self.handle_endtag(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in _VOID_TAGS:
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        if tag in _BLOCK_TAGS:
            self._flush()
        if tag in _HIDDEN_TAGS:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _HEADINGS and self.heading is not None and self.heading[0] == _HEADINGS[tag]:
            level, parts, line = self.heading
            self.events.append(("h", level, " ".join("".join(parts).replace("¶", "").split()), line))
            self.heading = None
        elif tag == "svg":
            self.svg = max(0, self.svg - 1)
        elif tag == "code":
            self.code = max(0, self.code - 1)
        elif tag == "pre":
            self.pre = max(0, self.pre - 1)
        elif tag == "div" and self.divs:
            self.divs.pop()
        elif tag in ("td", "th") and self.cell is not None:
            self._end_cell()
        elif tag == "tr":
            self.row = None
        elif tag == "table" and self.table_stack:
            self.tables.append(self.table_stack.pop())

    def _end_cell(self):
        tag, parts, line = self.cell
        text = " ".join("".join(t for t, _ in parts).split())
        all_code = all(c for t, c in parts if t.strip())
        if tag == "td" and text in _NAN_CELLS and not all_code:
            self.nan_cells.append((text, line))
        if self.row is not None:
            self.row.append((tag, text))
        self.cell = None

    def handle_data(self, data):
        if self.hidden:
            if self.lasttag == "style":
                self._css(data, "<style>")
            elif self.lasttag == "script":
                for m in _SCRIPT_IMPORT.finditer(data):
                    self._url("<script> import", m.group(1))
            return
        if self.heading is not None:
            self.heading[1].append(data)
        elif data.replace("¶", "").strip():
            self.events.append(("c", self._line))
        if self.cell is not None:
            self.cell[1].append((data, self.code > 0))
        if self.svg:
            return
        if not self.block:
            self.block_line = self._line
        self.block.append(data)
        if (self.code or self.pre) and self._in_markdown_cell():
            self.block_exempt = True

    def _attrs(self, tag, attrs):
        for name, value in attrs:
            if value is None:
                continue
            name = name.lower()
            if tag == "script" and name == "src":
                self.urls.append(("<script src>", value.strip(), self._line))
                continue
            if value.lstrip().lower().startswith("data:"):
                continue
            if name in _URL_ATTRS:
                self._url(f"{name}=", value)
            elif name == "style":
                self._css(value, "style=")
            if _MACHINE_PATH.search(value):
                self.paths.append((f"{name}={value}", self._line))

    def close(self):
        super().close()
        self._flush()


def _empty_sections(events, file: str) -> list[Problem]:
    """Headings with no content before the next heading of the same or a higher level."""
    out = []
    for i, ev in enumerate(events):
        if ev[0] != "h":
            continue
        _, level, title, line = ev
        for nxt in events[i + 1:]:
            if nxt[0] == "c":
                break
            if nxt[1] <= level:
                out.append(Problem(file, "empty_section", f"line {line}: heading h{level} {title!r} has nothing "
                                   f"under it before the next h{nxt[1]} (line {nxt[3]})", title))
                break
        else:
            if not any(e[0] == "c" for e in events[i + 1:]):
                out.append(Problem(file, "empty_section", f"line {line}: heading h{level} {title!r} has nothing "
                                   "under it before the end of the report", title))
    return out


def _raw_reprs(texts, file: str) -> list[Problem]:
    out = []
    for text, line, exempt in texts:
        if exempt:
            continue
        for rx, what in _RAW_REPRS:
            m = rx.search(text)
            if m:
                out.append(Problem(file, "raw_repr", f"line {line}: {what} in the text",
                                   _excerpt(text, m.start(), m.end())))
    return out


def _machine_paths(texts, attr_paths, file: str) -> list[Problem]:
    out = []
    for text, line, _ in texts:
        for m in _MACHINE_PATH.finditer(text):
            out.append(Problem(file, "machine_path", f"line {line}: absolute path of the machine in the text",
                               _excerpt(text, m.start(), m.end())))
    for value, line in attr_paths:
        m = _MACHINE_PATH.search(value)
        out.append(Problem(file, "machine_path", f"line {line}: absolute path of the machine in an attribute",
                           _excerpt(value, m.start(), m.end())))
    return out


def _float_counts(tables, file: str) -> list[Problem]:
    """Columns of integral floats; columns are counted from the right of each row's ``<td>`` cells
    (pandas puts the index, with its row spans, on the left, in ``<th>`` cells)."""
    out = []
    for t, rows in enumerate(tables, 1):
        body = [[text for tag, text in r if tag == "td"] for r in rows if any(tag == "td" for tag, _ in r)]
        heads = [[text for _, text in r] for r in rows if r and all(tag == "th" for tag, _ in r)]
        header = heads[0] if heads else []
        if not body:
            continue
        width = min(len(r) for r in body)
        for k in range(width, 0, -1):
            values = [r[-k] for r in body if r[-k]]
            if values and all(_INTEGRAL_FLOAT.match(v) for v in values) and \
                    any(abs(float(v.replace(",", ""))) > 1 for v in values):
                name = f" {header[-k]!r}" if len(header) >= k and header[-k] else ""
                out.append(Problem(file, "float_count", f"table {t}, column{name} (data column {width - k + 1}): "
                                   "every value is an integral float (a count shown as a float?)",
                                   ", ".join(values[:5])))
    return out


def _read(path_or_text) -> tuple[str, str, int]:
    """``(file label, text, size in bytes)`` of a path or of HTML text (a ``str`` holding ``<``)."""
    if isinstance(path_or_text, str) and "<" in path_or_text:
        return "<string>", path_or_text, len(path_or_text.encode("utf-8"))
    path = Path(path_or_text)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the report ({exc.strerror or exc})") from exc
    return str(path), data.decode("utf-8", errors="replace"), len(data)


def lint_html(path_or_text, *, budget_bytes: int = BUDGET_BYTES, allow_urls=()) -> list[Problem]:
    """Check one HTML report.

    Parameters
    ----------
    path_or_text : path or str
        The report's path, or its HTML text (a ``str`` holding a ``<``).
    budget_bytes : int
        Largest acceptable size of the report, in bytes.
    allow_urls : sequence of str
        URL prefixes that ``external_url`` lets through (none by default).

    Returns
    -------
    list of Problem
        Empty for a clean report; otherwise grouped by check, in document order within a check.

    Raises
    ------
    InputError
        The file is missing or unreadable.

    Examples
    --------
    >>> [str(p) for p in lint_html("<h1>T</h1><table><tr><td>NaN</td></tr></table>")]
    ["<string>: nan_in_table: line 1: table cell shows 'NaN' -- 'NaN'"]
    """
    file, text, size = _read(path_or_text)
    scan = _Scanner(allow_urls)
    scan.feed(text)
    scan.close()
    problems = _empty_sections(scan.events, file)
    problems += _raw_reprs(scan.texts, file)
    problems += [Problem(file, "nan_in_table", f"line {line}: table cell shows {value!r}", value)
                 for value, line in scan.nan_cells]
    problems += _machine_paths(scan.texts, scan.paths, file)
    problems += [Problem(file, "external_url", f"line {line}: {where} {'loads' if 'script' in where else 'points to'} "
                         f"{url[:100]!r}: a report must load nothing and link nowhere outside itself", url[:80])
                 for where, url, line in scan.urls]
    if size > budget_bytes:
        problems.append(Problem(file, "size", f"{size:,} bytes, over the budget of {budget_bytes:,} bytes"))
    problems += _float_counts(scan.tables, file)
    return problems


def _strip_comments(source: str) -> str:
    lines = (line for line in source.splitlines() if not line.lstrip().startswith("#"))
    return "\n".join(re.sub(r"\s#.*$", "", line) for line in lines)


def _shows_image(outputs) -> bool:
    for out in outputs:
        data = out.get("data", {}) if isinstance(out, dict) else {}
        if {"image/png", "image/svg+xml", "image/jpeg", "image/gif"} & set(data):
            return True
        html = data.get("text/html", "")
        html = "".join(html) if isinstance(html, list) else html
        if re.search(r"<(?:img|svg)\b", html, re.IGNORECASE):
            return True
    return False


def lint_notebook(ipynb_path) -> list[Problem]:
    """Check an executed notebook: every cell that draws a figure shows one (``no_image``).

    A code cell whose source (comments left out) matches one of :data:`PLOT_CALLS` must have an
    image among its outputs, unless it is tagged :data:`NO_FIGURE_TAG`.

    Raises
    ------
    InputError
        The file is missing or not a notebook.
    """
    import nbformat

    path = Path(ipynb_path)
    try:
        nb = nbformat.read(path, as_version=4)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the notebook ({exc})") from exc
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or NO_FIGURE_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        source = _strip_comments(cell.source)
        hits = [m for m in (re.search(p, source) for p in PLOT_CALLS) if m]
        if hits and not _shows_image(cell.get("outputs", [])):
            m = min(hits, key=lambda m: m.start())
            problems.append(Problem(str(path), "no_image", f"cell {i} calls a plotting function but shows no image "
                                    f"(tag it {NO_FIGURE_TAG!r} if that is meant)", _excerpt(source, m.start(), m.end())))
    return problems


def _total(files_sizes, label: str, total_budget_bytes: int) -> list[Problem]:
    total = sum(size for _, size in files_sizes)
    if total <= total_budget_bytes:
        return []
    largest = ", ".join(f"{Path(f).name} {s:,}" for f, s in sorted(files_sizes, key=lambda x: -x[1])[:3])
    return [Problem(label, "size", f"{len(files_sizes)} reports total {total:,} bytes, over the budget of "
                    f"{total_budget_bytes:,} bytes (largest: {largest})")]


def lint_reports(folder, budget_bytes: int = BUDGET_BYTES, total_budget_bytes: int = TOTAL_BUDGET_BYTES,
                 allow_urls=()) -> list[Problem]:
    """Check every ``*.html`` report of *folder*, and their total size.

    Raises
    ------
    InputError
        *folder* is not a folder, or holds no report.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    files = sorted(folder.glob("*.html"))
    if not files:
        raise InputError(f"{folder}: no *.html report in it")
    problems = [p for f in files for p in lint_html(f, budget_bytes=budget_bytes, allow_urls=allow_urls)]
    return problems + _total([(str(f), f.stat().st_size) for f in files], str(folder), total_budget_bytes)


def lint_paths(paths, budget_bytes: int = BUDGET_BYTES, total_budget_bytes: int = TOTAL_BUDGET_BYTES,
               allow_urls=()) -> list[Problem]:
    """Check reports (``.html``), executed notebooks (``.ipynb``) and report folders, as the command does.

    The HTML files given one by one are also checked for their total size.
    """
    problems, sizes = [], []
    for p in map(Path, paths):
        if p.is_dir():
            problems += lint_reports(p, budget_bytes, total_budget_bytes, allow_urls)
        elif p.suffix == ".ipynb":
            problems += lint_notebook(p)
        else:
            problems += lint_html(p, budget_bytes=budget_bytes, allow_urls=allow_urls)
            sizes.append((str(p), p.stat().st_size))
    if len(sizes) > 1:
        problems += _total(sizes, "(the reports given)", total_budget_bytes)
    return problems


def main(argv=None) -> int:
    """``python -m blobhelpers.core.reportlint FILE... [--budget BYTES] [--total-budget BYTES] [--allow-url PREFIX]``.

    Returns 0 when no problem is found, 1 when some are (one line each on stdout), 2 when a file is
    missing or unreadable.
    """
    import argparse

    p = argparse.ArgumentParser(prog="python -m blobhelpers.core.reportlint",
                                description="lint HTML reports (.html), executed notebooks (.ipynb) or report folders")
    p.add_argument("paths", nargs="+", type=Path)
    p.add_argument("--budget", type=int, default=BUDGET_BYTES, help="largest size of one report, in bytes")
    p.add_argument("--total-budget", type=int, default=TOTAL_BUDGET_BYTES,
                   help="largest total size of the reports, in bytes")
    p.add_argument("--allow-url", action="append", default=[], metavar="PREFIX",
                   help="an external URL prefix to accept (repeatable; none by default)")
    a = p.parse_args(argv)

    def _run(a):
        problems = lint_paths(a.paths, a.budget, a.total_budget, a.allow_url)
        for prob in problems:
            print(prob)
        return 1 if problems else 0

    return run_guarded(_run, a, "reportlint")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
