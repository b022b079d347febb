"""Picking a stage's headline numbers (``metrics/<stage>.json``, ``dvc metrics show``) from all it measured.

The patterns are the stage's own (``StageCard.headlines``, :mod:`blobhelpers.core.stagecard`);
this module only applies them.
"""

from __future__ import annotations

from fnmatch import fnmatch

__all__ = ["VOLATILE", "headline", "flatten"]

#: Keys never shown as headline numbers (timings and speeds vary from run to run).
VOLATILE = ("*seconds*", "*_per_s*", "*_s", "stage_*")


def flatten(d: dict, prefix: str = "") -> dict:
    """Nested dicts as one level of ``a.b`` keys (lists left out)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        elif not isinstance(v, list):
            out[f"{prefix}{k}"] = v
    return out


def headline(patterns, metrics: dict, n: int = 6) -> list[tuple[str, object]]:
    """Up to *n* (key, value) headline metrics: the keys matching *patterns* (fnmatch; ``{best}`` = the
    ``best`` or ``model`` entry), timings excluded; with no patterns, the first numeric entries.

    >>> headline(("best", "{best}_test_auc", "*_test_auc"), {"best": "b", "b_test_auc": 0.9, "a_test_auc": 0.5,
    ...                                                      "stage_seconds": 3})
    [('best', 'b'), ('b_test_auc', 0.9), ('a_test_auc', 0.5)]
    >>> headline((), {"stage_seconds": 3, "auc": 0.7, "name": "x", "n": 4})
    [('auc', 0.7), ('n', 4)]
    """
    flat = flatten(metrics)
    best = str(flat.get("best", flat.get("model", "")))
    out: dict[str, object] = {}
    for pat in patterns or ():
        pat = pat.replace("{best}", best)
        for k, v in flat.items():
            if fnmatch(k, pat) and k not in out and not any(fnmatch(k, x) for x in VOLATILE):
                out[k] = v
    if not out:  # no patterns (or none matched): the first numeric entries
        out = {k: v for k, v in flat.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
               and not any(fnmatch(k, x) for x in VOLATILE)}
    return list(out.items())[:n]
