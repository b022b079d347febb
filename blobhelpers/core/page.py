"""The page every report is: one small stylesheet, a navigation bar, the body, offline.

nbconvert's ``lab`` template embeds ~257 kB of JupyterLab CSS in every report. The reports are
rendered with nbconvert's ``basic`` template instead (the cells' HTML only), and :func:`wrap_page`
puts that body in a page with :data:`STYLE` (a few kB; legible on screen and in print, one figure
per printed page where it fits) and a navigation bar linking the article and every stage report.

The navigation lists the stages whose notebooks exist (``notebooks/NN_*.py``): the report of
``notebooks/NN_name.py`` is ``reports/NN_name.html``; the article (``notebooks/90_index.py``) is
``reports/index.html``.
"""

from __future__ import annotations

import html as _html
import re
from pathlib import Path

__all__ = ["STYLE", "ARTICLE", "stage_links", "nav_html", "wrap_page", "report_name", "link_references"]

#: The article's report (the index stage's notebook writes it).
ARTICLE = ("90_index", "index.html", "Article: WFC3 ISR 2021-08, rebuilt")

STYLE = """
:root{--fg:#1b1b1b;--muted:#555;--line:#d0d4da;--bg2:#f4f6f8;--ok:#1a7f37;--bad:#b3261e;--accent:#0b5394}
*{box-sizing:border-box}
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);
 margin:0;background:#fff}
main{max-width:1100px;margin:0 auto;padding:0.5em 1.5em 3em}
nav.bh-nav{position:sticky;top:0;z-index:5;background:#102a43;padding:0.35em 1em;font-size:13px;
 line-height:1.9}
nav.bh-nav a{color:#d9e2ec;text-decoration:none;margin-right:0.9em;white-space:nowrap}
nav.bh-nav a.here{color:#fff;font-weight:600;border-bottom:2px solid #f0b429}
h1{font-size:1.7em;margin:0.6em 0 0.3em}h2{font-size:1.3em;margin:1.4em 0 0.4em;
 border-bottom:1px solid var(--line);padding-bottom:0.15em}h3{font-size:1.1em;margin:1.1em 0 0.3em}
a.anchor-link{display:none}
a{color:var(--accent)}
code{font-size:0.92em;background:var(--bg2);padding:0 0.25em;border-radius:3px}
pre{background:var(--bg2);padding:0.6em 0.8em;overflow-x:auto;font-size:13px;line-height:1.35;
 border-radius:4px;white-space:pre-wrap}
table{border-collapse:collapse;margin:0.6em 0;font-size:13.5px;max-width:100%;display:block;overflow-x:auto}
th,td{border:1px solid var(--line);padding:0.2em 0.55em;text-align:left;vertical-align:top}
thead th{background:var(--bg2)}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
img{max-width:100%;height:auto}
.output_png,.output_jpeg{margin:0.6em 0}
blockquote{margin:0.6em 0;padding:0.1em 1em;border-left:3px solid var(--line);color:var(--muted)}
section.bh-verdict{background:#f0f6fc;border:1px solid #b6d4f0;border-radius:6px;padding:0.2em 1.1em 0.6em;
 margin:0.8em 0 1.4em}
section.bh-verdict h2{border:0;margin-top:0.5em}
.bh-met{color:var(--ok);font-weight:600}.bh-notmet{color:var(--bad);font-weight:600}
.bh-src,.bh-prov,.bh-data{color:var(--muted);font-size:13px}
figure.bh-fig{margin:1.2em 0 2em;break-inside:avoid;page-break-inside:avoid}
figure.bh-fig figcaption{font-size:13.5px;color:#333;margin-top:0.3em}
details.bh-provenance{margin-top:2.5em;border-top:1px solid var(--line);padding-top:0.5em}
details.bh-provenance summary{cursor:pointer;color:var(--muted)}
@media print{nav.bh-nav{display:none}main{max-width:none;padding:0}figure.bh-fig{page-break-before:always}
 details.bh-provenance{display:none}a{color:inherit}}
""".strip()


def report_name(stem: str) -> str:
    """The report file of notebook *stem* (``90_index`` -> ``index.html``).

    >>> report_name("03_evaluate"), report_name("90_index")
    ('03_evaluate.html', 'index.html')
    """
    return ARTICLE[1] if stem == ARTICLE[0] else f"{stem}.html"


def _short(stem: str) -> str:
    num, _, rest = stem.partition("_")
    return f"{num} {rest.replace('_', ' ')}"


def stage_links(notebooks: str | Path) -> list[tuple[str, str, str]]:
    """``(stem, report file, label)`` for the article, then every stage notebook in *notebooks*."""
    stems = sorted(p.stem for p in Path(notebooks).glob("[0-9][0-9]_*.py") if p.stem != ARTICLE[0])
    return [ARTICLE] + [(s, report_name(s), _short(s)) for s in stems]


def nav_html(links: list[tuple[str, str, str]], here: str | None) -> str:
    """The navigation bar; the current page's link is marked."""
    e = _html.escape
    here_attr = ' class="here"'
    items = "".join(f'<a href="{e(f)}"{here_attr if s == here else ""}>{e(label)}</a>' for s, f, label in links)
    return f'<nav class="bh-nav">{items}</nav>'


_TAG = re.compile(r"(<[^>]+>)")
_SKIP = {"a", "pre", "script", "style", "title", "h1"}


def link_references(html: str, links: list[tuple[str, str, str]]) -> str:
    """Turn mentions of other reports into links: "stage 03" and "reports/03_evaluate.html" point to
    that report. Text inside links, ``<pre>``, scripts, styles and the title is left alone.

    >>> links = [("03_evaluate", "03_evaluate.html", "03 evaluate")]
    >>> link_references("<p>see stage 03 and <code>reports/03_evaluate.html</code>; stage 07</p>", links)
    '<p>see <a href="03_evaluate.html">stage 03</a> and <code><a href="03_evaluate.html">reports/03_evaluate.html</a></code>; stage 07</p>'
    >>> link_references('<a href="x">stage 03</a>', links)
    '<a href="x">stage 03</a>'
    """
    by_num = {stem.split("_", 1)[0]: f for stem, f, _ in links if stem[:2].isdigit() and f != ARTICLE[1]}
    by_file = {f: f for _, f, _ in links}
    if not by_num:
        return html
    stage_rx = re.compile(r"\b([Ss]tages? )(\d\d)\b")
    file_rx = re.compile(r"\breports/(\d\d_\w+\.html)\b")
    out, depth = [], {t: 0 for t in _SKIP}
    for part in _TAG.split(html):
        if part.startswith("<"):
            m = re.match(r"<(/?)([a-zA-Z0-9]+)", part)
            if m and m.group(2).lower() in _SKIP and not part.endswith("/>"):
                depth[m.group(2).lower()] += -1 if m.group(1) else 1
            out.append(part)
            continue
        if any(depth.values()):
            out.append(part)
            continue
        part = file_rx.sub(lambda m: f'<a href="{by_file[m.group(1)]}">{m.group(0)}</a>' if m.group(1) in by_file
                           else m.group(0), part)
        part = stage_rx.sub(lambda m: f'<a href="{by_num[m.group(2)]}">{m.group(0)}</a>' if m.group(2) in by_num
                            else m.group(0), part)
        out.append(part)
    return "".join(out)


_TITLE_TAG = re.compile(r"<h1\b[^>]*>(.*?)</h1>", re.IGNORECASE | re.DOTALL)


def wrap_page(body: str, links: list[tuple[str, str, str]] | None = None, here: str | None = None,
              title: str | None = None) -> str:
    """A complete offline HTML page around *body* (a ``basic``-template nbconvert body).

    >>> page = wrap_page("<h1>Stage 01</h1><p>x</p>", [("01_a", "01_a.html", "01 a")], here="01_a")
    >>> "<title>Stage 01</title>" in page and 'class="here"' in page and "<style>" in page
    True
    """
    if title is None:
        m = _TITLE_TAG.search(body)
        title = _html.unescape(re.sub(r"<[^>]+>", "", m.group(1))).replace("¶", "").strip() if m else "report"
    nav = nav_html(links, here) if links else ""
    if links:
        body = link_references(body, [x for x in links if x[0] != here])
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{_html.escape(title)}</title>\n<style>\n{STYLE}\n</style>\n</head>\n<body>\n{nav}\n"
            f"<main>\n{body}\n</main>\n</body>\n</html>\n")
