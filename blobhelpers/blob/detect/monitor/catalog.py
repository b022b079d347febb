"""The known-blob catalog: blobs that are not news (existing ones and their dips)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from blobhelpers.core.errors import InputError
from blobhelpers.core.paths import atomic_path

__all__ = ["KnownCatalog", "CATALOG_COLUMNS"]

CATALOG_COLUMNS = ["id", "x", "y", "radius", "depth", "first_seen", "source", "note"]


class KnownCatalog:
    """Blobs already known (x, y, radius in the frames' pixel coordinates), read from / written to CSV.

    Columns: ``id, x, y, radius, depth, first_seen, source, note`` (only x, y, radius are
    required when reading; a simulated campaign's ``catalog.csv`` can be used directly).
    """

    def __init__(self, rows: list[dict] | None = None, path: str | Path | None = None):
        self.rows = list(rows or [])
        self.path = Path(path) if path else None

    @classmethod
    def read(cls, path: str | Path, must_exist: bool = True) -> "KnownCatalog":
        import pandas as pd

        path = Path(path)
        if not path.exists():
            if must_exist:
                raise InputError(f"{path}: known-blob catalog not found")
            return cls([], path)
        try:
            df = pd.read_csv(path)
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"{path}: cannot read the known-blob catalog ({exc})") from exc
        missing = {"x", "y", "radius"} - set(df.columns)
        if missing:
            raise InputError(f"{path}: catalog lacks column(s) {sorted(missing)}")
        for c in ("x", "y", "radius"):
            vals = pd.to_numeric(df[c], errors="coerce")
            if vals.isna().any():
                bad = int(np.nonzero(vals.isna().to_numpy())[0][0]) + 2
                raise InputError(f"{path}: line {bad}: column {c!r} is not a number")
            df[c] = vals
        rows = df.to_dict("records")
        for i, r in enumerate(rows):
            r.setdefault("id", i)
        return cls(rows, path)

    def __len__(self) -> int:
        return len(self.rows)

    def xyr(self) -> np.ndarray:
        if not self.rows:
            return np.zeros((0, 3))
        return np.array([[float(r["x"]), float(r["y"]), float(r["radius"])] for r in self.rows])

    def match(self, x: float, y: float, margin: float) -> dict | None:
        """The known blob whose disc (radius + *margin*) contains (x, y), nearest first."""
        if not self.rows:
            return None
        k = self.xyr()
        dist = np.hypot(k[:, 0] - x, k[:, 1] - y)
        inside = dist <= k[:, 2] + margin
        if not inside.any():
            return None
        j = int(np.argmin(np.where(inside, dist, np.inf)))
        return self.rows[j]

    @staticmethod
    def same_blob(row: dict, x: float, y: float, core: float = 0.5) -> bool:
        """Whether a candidate at (x, y) is the known blob *row* itself: its centre lies within
        *core* x the blob's radius (at least 2 px) of the blob's centre.

        A candidate on the rim of a large known blob (a registration residual, or a new blob
        beside it) is not the blob itself, though :meth:`match` (radius + margin) finds it there.

        >>> row = {"x": 100.0, "y": 100.0, "radius": 12.0}
        >>> KnownCatalog.same_blob(row, 103.0, 101.0), KnownCatalog.same_blob(row, 110.0, 100.0)
        (True, False)
        >>> KnownCatalog.same_blob({"x": 10.0, "y": 10.0, "radius": 2.0}, 11.8, 10.0)
        True
        """
        r = float(row["radius"])
        return bool(np.hypot(float(row["x"]) - x, float(row["y"]) - y) <= max(2.0, core * r))

    def add(self, x: float, y: float, radius: float, depth: float | None = None, first_seen: str = "",
            source: str = "", note: str = "", merge_px: float = 3.0) -> dict:
        """Add a confirmed blob (an entry within *merge_px* of an existing one is not duplicated)."""
        for r in self.rows:
            if np.hypot(float(r["x"]) - x, float(r["y"]) - y) <= merge_px:
                return r
        ids = [int(r["id"]) for r in self.rows if str(r.get("id", "")).lstrip("-").isdigit()]
        row = {"id": (max(ids) + 1) if ids else 0, "x": round(float(x), 2), "y": round(float(y), 2),
               "radius": round(float(radius), 2), "depth": "" if depth is None else round(float(depth), 5),
               "first_seen": first_seen, "source": source, "note": note}
        self.rows.append(row)
        return row

    def write(self, path: str | Path | None = None) -> Path:
        import csv

        path = Path(path or self.path)
        cols = list(CATALOG_COLUMNS)
        for r in self.rows:
            cols += [k for k in r if k not in cols]
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            with open(tmp, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=cols)
                w.writeheader()
                for r in self.rows:
                    w.writerow({k: r.get(k, "") for k in cols})
        return path
