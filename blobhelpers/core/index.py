"""``reports/index.html``: every stage's report with a few headline metrics and a one-line verdict.

The ``index`` stage (``notebooks/90_index.py``) calls :func:`collect` and :func:`index_table`.
A stage is a report ``reports/NN_name.html``; its metrics are ``metrics/NN_name.json``. The
headline numbers and the verdict sentence are the stage's own (its card,
:class:`blobhelpers.core.stagecard.StageCard`, passed in by the index notebook). Missing keys never
fail the index: stages rename metrics, the index follows.
"""

from __future__ import annotations

import html as _html
import re
from dataclasses import dataclass, field
from pathlib import Path

from blobhelpers.core.headlines import headline
from blobhelpers.core.stagecard import StageCard, fmt  # noqa: F401 (fmt: re-exported)
from blobhelpers.core.verdicts import load_metrics

__all__ = ["StageEntry", "collect", "index_table", "report_title", "fmt"]

_TITLE = re.compile(r"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_H1 = re.compile(r"<h1\b[^>]*>(.*?)</h1>", re.IGNORECASE | re.DOTALL)


def report_title(html_text: str, default: str = "") -> str:
    """The report's title: its first ``<h1>``, else its ``<title>``.

    >>> report_title('<title>x</title><h1 id="a">Stage 03 — eval<a class="anchor-link">¶</a></h1>')
    'Stage 03 — eval'
    """
    for rx in (_H1, _TITLE):
        m = rx.search(html_text)
        if m:
            text = _html.unescape(re.sub(r"<[^>]+>", "", m.group(1))).replace("¶", "").strip()
            if text and text != "Notebook":
                return text
    return default


@dataclass
class StageEntry:
    stem: str
    title: str
    report: str  # relative to the index page
    metrics_file: str | None
    headline: list = field(default_factory=list)
    verdict: str = ""


def collect(reports: str | Path, metrics: str | Path, cards=(), exclude: tuple[str, ...] = ("index",)) -> list[StageEntry]:
    """One entry per ``reports/*.html`` (sorted by name), with its ``metrics/<same name>.json``; headlines
    and verdict from the stage's card in *cards* (a report without a card gets its first numbers)."""
    by_stem = {c.stem: c for c in cards}
    reports, metrics = Path(reports), Path(metrics)
    out = []
    for rep in sorted(reports.glob("*.html")):
        if rep.stem in exclude:
            continue
        mfile = metrics / f"{rep.stem}.json"
        card = by_stem.get(rep.stem)
        m = load_metrics(rep.stem, metrics)  # headline over details (everything the stage measured), flattened
        out.append(StageEntry(stem=rep.stem, title=report_title(rep.read_text(errors="replace"), rep.stem),
                              report=rep.name, metrics_file=mfile.name if mfile.is_file() else None,
                              headline=headline(card.headlines if card else (), m),
                              verdict=(card or StageCard(rep.stem, "own")).sentence(m)))
    return out


def index_table(entries: list[StageEntry]) -> str:
    """An HTML table: stage (linked report), headline metrics, verdict."""
    e = _html.escape
    rows = []
    for s in entries:
        mets = "<br>".join(f"<code>{e(k)}</code> {e(fmt(v))}" for k, v in s.headline) or "—"
        rows.append(f'<tr><td><a href="{e(s.report)}"><b>{e(s.stem)}</b></a><br>{e(s.title)}</td>'
                    f"<td>{mets}</td><td>{e(s.verdict)}</td></tr>")
    return ('<table class="bh-index"><thead><tr><th>stage (report)</th><th>headline metrics '
            "(<code>dvc metrics show</code>; details in <code>metrics/details/</code>)</th><th>verdict</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")
