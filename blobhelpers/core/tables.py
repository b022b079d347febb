"""Tables as a reader should see them: no pandas index, integers as integers, words instead of NaN.

Every stage report shows tables built with pandas. pandas' own HTML shows the row index, writes
counts that passed through a float column as ``2000.0``, prints ``NaN`` and cuts long tables to
``... rows x columns``. :func:`frame_html` renders a DataFrame (or Series) the way the reports
want, and :func:`install` makes it the notebook's HTML representation of every DataFrame and
Series, so ``display(df)`` in a stage notebook (or in JupyterLab) gives the readable table.

Rules:

* a column whose finite values are all integral prints them as integers;
* other floats get 4 significant digits (probabilities and rates stay readable);
* missing values (NaN, None) print as ``n/a``, or as the word given for the column;
* dict and list cells print as ``key: value, ...`` text, never as Python reprs;
* the index is shown only when it carries information (it has a name, or it holds labels rather
  than row numbers): it becomes the first column, named after the index;
* no truncation: every row and column is shown.
"""

from __future__ import annotations

import html as _html
import math
import numbers

__all__ = ["cell_text", "frame_html", "install", "show_table", "format_duration"]


def _is_missing(v) -> bool:
    if v is None:
        return True
    try:
        return isinstance(v, float) and math.isnan(v) or (hasattr(v, "dtype") and bool(v != v))
    except (TypeError, ValueError):
        return False


def cell_text(v, integral: bool = False, missing: str = "n/a") -> str:
    """One cell as text.

    >>> [cell_text(x) for x in (0.123456, 2000.0, 3, float("nan"), None, True, "a")]
    ['0.1235', '2000', '3', 'n/a', 'n/a', 'yes', 'a']
    >>> cell_text({"wfc": 49, "ir": 3}), cell_text([1, 2.5])
    ('wfc: 49, ir: 3', '1, 2.5')
    >>> cell_text(2000.0, integral=True), cell_text(1e9), cell_text(0.0000123)
    ('2000', '1e+09', '1.23e-05')
    """
    if _is_missing(v):
        return missing
    if isinstance(v, (bool,)) or type(v).__name__ == "bool_":
        return "yes" if v else "no"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {cell_text(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(cell_text(x) for x in v)
    if isinstance(v, numbers.Integral):
        return str(int(v))
    if isinstance(v, numbers.Real):
        f = float(v)
        if math.isinf(f):
            return "∞" if f > 0 else "-∞"
        if (integral or f.is_integer()) and abs(f) < 1e7:
            return str(int(round(f)))
        return f"{f:.4g}"
    return str(v)


def _integral_columns(df) -> set:
    out = set()
    for col in df.columns:
        vals = [v for v in df[col].tolist() if isinstance(v, numbers.Real) and not isinstance(v, bool)
                and not _is_missing(v)]
        if vals and len(vals) == sum(1 for v in df[col].tolist() if not _is_missing(v)) \
                and all(float(v).is_integer() for v in vals):
            out.add(col)
    return out


def frame_html(df, missing: str | dict = "n/a", index: bool | None = None) -> str:
    """A DataFrame or Series as a plain HTML table (class ``bh-table``), by the module's rules.

    *missing*: the word for a missing value, or a dict column -> word ("n/a: no positives").
    *index*: show the index as the first column (default: only when it is named or not integer).

    >>> import pandas as pd
    >>> html = frame_html(pd.DataFrame({"n": [2000.0, 500.0], "auc": [0.97051, float("nan")]}))
    >>> "2000<" in html and "0.9705" in html and "n/a" in html and "<th></th>" not in html
    True
    """
    import pandas as pd

    if isinstance(df, pd.Series):
        df = df.to_frame(name=df.name if df.name is not None else "value")
        index = True if index is None else index
    if index is None:  # an index carries information when it is named or holds labels (not row numbers)
        index = any(n is not None for n in df.index.names) or not pd.api.types.is_integer_dtype(df.index.dtype)
    if index:
        name = df.index.name or ("" if len(df.columns) else "key")
        df = df.reset_index(names=[name or " "]) if df.index.nlevels == 1 else df.reset_index()
    e = _html.escape
    integral = _integral_columns(df)
    head = "".join(f"<th>{e(cell_text(c))}</th>" for c in df.columns)
    rows = []
    for rec in df.itertuples(index=False, name=None):
        cells = []
        for col, v in zip(df.columns, rec):
            word = missing.get(col, "n/a") if isinstance(missing, dict) else missing
            txt = cell_text(v, integral=col in integral, missing=word)
            num = isinstance(v, numbers.Real) and not isinstance(v, bool) and not _is_missing(v)
            cells.append(f'<td class="num">{e(txt)}</td>' if num else f"<td>{e(txt)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table class="bh-table"><thead><tr>{head}</tr></thead><tbody>' + "".join(rows)
            + "</tbody></table>")


def show_table(df, missing: str | dict = "n/a", index: bool | None = None) -> None:
    """Display :func:`frame_html` in a notebook (for a table that needs its own missing-value words)."""
    from IPython.display import HTML, display

    display(HTML(frame_html(df, missing=missing, index=index)))


def install() -> bool:
    """Make :func:`frame_html` the HTML (and plain-text) representation of DataFrames and Series
    in the running IPython kernel; False outside IPython."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    ip = get_ipython()
    if ip is None:
        return False
    import pandas as pd

    fmt = ip.display_formatter.formatters
    for cls in (pd.DataFrame, pd.Series):
        fmt["text/html"].for_type(cls, lambda obj: frame_html(obj))
    pd.set_option("display.max_rows", None)
    pd.set_option("display.max_columns", None)
    pd.set_option("display.max_colwidth", None)
    return True


def format_duration(seconds: float) -> str:
    """A duration for a person (the stage runner's log, training progress): ``42 s``, ``12 min 05 s``,
    ``3 h 13 min`` (``benchmarks/bench_pipeline.py`` parses the first two forms).

    >>> [format_duration(s) for s in (4.2, 725, 11580)]
    ['4 s', '12 min 05 s', '3 h 13 min']
    """
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
