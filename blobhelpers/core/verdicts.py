"""The verdict box at the top of every stage report, built from the stage's metrics files.

A reader opens a report to learn whether the stage did what it set out to do. The box answers
that before anything else: which data the numbers come from (own simulator = in-distribution,
the independent cross-simulator, real data, or in-sample), the one-line verdict
(the stage card's, :class:`blobhelpers.core.stagecard.StageCard`), and each checked number with its 95 % interval, its
count (k/n), its target and whether the target is met. Nothing in it is typed: every value is read
from ``metrics/<stage>.json`` and ``metrics/details/<stage>.json`` when the report is rendered
(:func:`blobhelpers.core.report.show_verdict`, the stage notebook's last cell, after it wrote them),
so the box always agrees with the metrics files.

The stage's card declares the data label and the checks. A check names a metric key, a
target (``>=`` or ``<=`` a value, or none) and how to find its count: keys ``<key>.k/.n/.lo/.hi``
(the :func:`blobhelpers.core.stats.rate` shape), ``<key>_k/_n/_lo/_hi``, or an explicit ``n`` key;
the interval is the 95 % Wilson interval of k/n when the file does not hold one.
"""

from __future__ import annotations

import html as _html
import json
import math
from pathlib import Path

from blobhelpers.core.headlines import flatten
from blobhelpers.core.stagecard import DATA_LABELS, StageCard
from blobhelpers.core.stats import wilson

__all__ = ["check_rows", "load_metrics", "verdict_box_html"]

def load_metrics(stem: str, metrics_dir: str | Path) -> dict:
    """The stage's headline and detail metrics, flattened (``a.b`` keys); {} when it has none."""
    metrics_dir = Path(metrics_dir)
    out: dict = {}
    for f in (metrics_dir / "details" / f"{stem}.json", metrics_dir / f"{stem}.json"):
        if f.is_file():
            out.update(flatten(json.loads(f.read_text())))
    return out


def _num(v) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _count(m: dict, key: str, value: float, n_key: str | None):
    """(k, n, lo, hi) where the metrics give them (or Wilson from k/n), else Nones."""
    base = key[: -len(".rate")] if key.endswith(".rate") else key
    k = n = lo = hi = None
    for sep in (".", "_"):
        k = k if k is not None else _num(m.get(f"{base}{sep}k"))
        n = n if n is not None else _num(m.get(f"{base}{sep}n"))
        lo = lo if lo is not None else _num(m.get(f"{base}{sep}lo"))
        hi = hi if hi is not None else _num(m.get(f"{base}{sep}hi"))
    if n is None and n_key:
        n = _num(m.get(n_key))
    if n is not None and k is None and 0 <= value <= 1:
        k = round(value * n)  # the files round rates (e.g. 0.0008 of 1222): the count is an integer
    if n and k is not None and (lo is None or hi is None) and 0 <= value <= 1:
        lo, hi = wilson(int(round(k)), int(n))
    return k, n, lo, hi


def _fmt(v: float) -> str:
    if float(v).is_integer() and abs(v) >= 1:
        return str(int(v))
    return f"{v:.3g}"


def _interval(lo, hi) -> str:
    """``"0.550-0.737"`` (3 decimals for rates, 3 significant digits otherwise); "" when unknown.

    >>> _interval(0.00443, 0.129), _interval(0, 3.47), _interval(None, 1)
    ('0.004-0.129', '0-3.47', '')
    """
    if lo is None or hi is None:
        return ""
    if 0 <= lo <= 1 and 0 <= hi <= 1:
        return f"{lo:.3f}-{hi:.3f}"
    return f"{_fmt(lo)}-{_fmt(hi)}"


def check_rows(card: StageCard, m: dict) -> list[dict]:
    """The card's checks evaluated on flattened metrics *m*: one dict per check found in *m*.

    >>> from blobhelpers.core.stagecard import Check
    >>> card = StageCard("06_isr_recipe", "own", checks=(Check("TPR", "isr_recipe_isr2021_val_tpr", ">=", 0.89,
    ...                  n_key="isr_recipe_isr2021_val_n_pos"),))
    >>> rows = check_rows(card, {"isr_recipe_isr2021_val_tpr": 0.982, "isr_recipe_isr2021_val_n_pos": 500})
    >>> r = rows[0]; (r["value"], r["count"], r["target"], r["met"])
    ('0.982', '491/500', '>= 0.89', True)
    >>> r["interval"]
    '0.966-0.991'
    """
    best = str(m.get("best", m.get("model", "")))
    rows = []
    for c in card.checks:
        key = c.key.replace("{best}", best)
        v = _num(m.get(key))
        if v is None:
            continue
        if c.count_of:  # a rate per c.scale cases: count and interval from the fraction it scales
            frac = _num(m.get(c.count_of))
            frac = v / c.scale if frac is None else frac
            k, n, lo, hi = _count(m, c.count_of, frac, c.n_key)
            lo, hi = (lo * c.scale if lo is not None else None, hi * c.scale if hi is not None else None)
        else:
            k, n, lo, hi = _count(m, key, v, c.n_key)
        met = None
        if c.op == ">=":
            met = v >= c.target
        elif c.op == "<=":
            met = v <= c.target
        count = ""
        if k is not None and n:
            count = f"{_fmt(k)}/{_fmt(n)}"
        rows.append({
            "label": c.label, "key": key, "value": _fmt(v) + c.unit,
            "interval": _interval(lo, hi),
            "count": count, "target": f"{c.op} {_fmt(c.target)}{c.unit}" if c.op else "",
            "met": met,
        })
    return rows


def verdict_box_html(card: StageCard, metrics_dir: str | Path) -> str:
    """The HTML verdict box of the card's stage ("" when the stage has no metrics file)."""
    stem = card.stem
    m = load_metrics(stem, metrics_dir)
    if not m:
        return ""
    e = _html.escape
    data = DATA_LABELS.get(card.data, "")
    rows = check_rows(card, m)
    met_word = {True: '<span class="bh-met">met</span>', False: '<span class="bh-notmet">not met</span>',
                None: ""}
    table = ""
    if rows:
        cols = [("measure", "label"), ("value", "value"), ("95 % interval", "interval"), ("k/n", "count"),
                ("target", "target"), ("", "met")]
        cols = [c for c in cols if c[1] in ("label", "value") or any(r[c[1]] not in ("", None) for r in rows)]

        def cell(r, key):
            if key == "met":
                return f"<td>{met_word[r['met']]}</td>"
            if key == "label":
                return f"<td>{e(r['label'])}</td>"
            text = f"<b>{e(r[key])}</b>" if key == "value" else e(r[key])
            return f'<td class="num">{text}</td>'

        head = "".join(f"<th>{e(h)}</th>" for h, _ in cols)
        body = "".join("<tr>" + "".join(cell(r, k) for _, k in cols) + "</tr>" for r in rows)
        table = f'<table class="bh-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    n_met = sum(r["met"] is True for r in rows)
    n_target = sum(r["met"] is not None for r in rows)
    score = f" Targets met: {n_met} of {n_target}." if n_target else ""
    return ('<section class="bh-verdict" id="verdict"><h2>Verdict</h2>'
            + (f'<p class="bh-data">Data: <b>{e(data)}</b></p>' if data else "")
            + f"<p>{e(card.sentence(m))}{e(score)}</p>{table}"
            + f'<p class="bh-src">Read from <a href="../metrics/{e(stem)}.json">metrics/{e(stem)}.json</a> and '
            f'<a href="../metrics/details/{e(stem)}.json">metrics/details/{e(stem)}.json</a> when this report '
            "was rendered.</p></section>")
