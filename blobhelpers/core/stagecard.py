"""A stage's card: what its numbers are called, which of them are headlines, what is checked, and its verdict.

Each pipeline stage declares ONE :class:`StageCard`, in a module of its own next to the code it runs
(``blobhelpers/blob/stages/<stage>.py``, ``blobhelpers/svm/stages/<stage>.py``). The stage's notebook
imports it to write its metrics (:func:`blobhelpers.core.report.write_metrics`) and to show its
verdict box (:func:`blobhelpers.core.report.show_verdict`); the index stage imports every card.
So editing one stage's headlines, checks or verdict sentence reruns that stage and the index, and
nothing else. The core knows the shape of a card, never a stage's keys.

A card's fields
---------------
``stem``
    The stage's report and metrics name (``04_monitor``).
``data``
    Where its numbers come from: a key of :data:`DATA_LABELS`.
``headlines``
    fnmatch patterns of the keys written to ``metrics/<stem>.json`` (``{best}`` = the stage's
    ``best`` or ``model`` entry); everything else goes to ``metrics/details/<stem>.json``.
``checks``
    The numbers its verdict box shows with interval, count and target (:class:`Check`).
``verdict``
    A function of the flattened metrics returning one sentence; a ``verdict`` entry written by
    the stage wins; a missing key gives a neutral line, never an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from blobhelpers.core.headlines import flatten

__all__ = ["Check", "StageCard", "DATA_LABELS", "metric", "fmt"]

#: What the data labels mean (shown in the verdict box's legend and the article's claims table).
DATA_LABELS = {
    "own": "own simulator (in-distribution)",
    "independent": "independent cross-simulator",
    "real": "real data",
    "in-sample": "in-sample (the data the model was built on)",
    "sim-svm": "simulated SVM products",
}


@dataclass(frozen=True)
class Check:
    """One checked number of a stage: a metric key, an optional target (``>=``/``<=`` a value) and
    where its count is (keys ``<key>.k/.n/.lo/.hi`` or ``<key>_k/...``, or an explicit *n_key*)."""

    label: str
    key: str
    op: str | None = None  # ">=", "<=" or None (reported, no target)
    target: float | None = None
    n_key: str | None = None  # explicit key of the number of cases
    unit: str = ""
    count_of: str | None = None  # a rate shown per *scale* (e.g. per 100 days): the key of the fraction
    scale: float = 1.0           # whose k/n/lo/hi give its count and interval (the interval times *scale*)


@dataclass(frozen=True)
class StageCard:
    """The declaration of one stage (see the module docstring)."""

    stem: str
    data: str
    headlines: tuple[str, ...] = ()
    checks: tuple[Check, ...] = ()
    verdict: Callable[[dict], str] | None = None

    def __post_init__(self):
        if self.data not in DATA_LABELS:
            raise ValueError(f"stage {self.stem}: data label {self.data!r} is not one of {sorted(DATA_LABELS)}")

    def sentence(self, metrics: dict) -> str:
        """One line on what the stage's numbers say (a ``verdict`` entry of *metrics* wins).

        >>> card = StageCard("11_svm_models", "real", verdict=lambda m: f"{m['best']}: recall {fmt(m['r'])}.")
        >>> card.sentence({"best": "lr", "r": 0.35}), card.sentence({"r": 1}), card.sentence({})
        ('lr: recall 0.35.', 'ran; see the report.', 'no metrics.')
        """
        if isinstance(metrics.get("verdict"), str):
            return metrics["verdict"]
        if self.verdict is not None:
            try:
                return self.verdict(flatten(metrics))
            except (KeyError, TypeError, ValueError):
                pass
        return "ran; see the report." if metrics else "no metrics."


def metric(m: dict, *keys):
    """The first of *keys* that *m* holds (not None); KeyError naming the first key otherwise.

    >>> metric({"a": None, "b": 2}, "a", "b")
    2
    """
    for k in keys:
        if k in m and m[k] is not None:
            return m[k]
    raise KeyError(keys[0])


def fmt(v) -> str:
    """A metric value for a person: 3 significant digits, ints as they are.

    >>> [fmt(x) for x in (0.98765, 12, 1234.5, True, "blobnet", None, float("nan"))]
    ['0.988', '12', '1.23e+03', 'yes', 'blobnet', '—', '—']
    """
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)
