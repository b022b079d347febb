"""The monitor's log: one JSON record per processed frame (JSON Lines), plus file hashes."""

from __future__ import annotations

import contextlib
import fcntl
import json
from pathlib import Path

from blobhelpers.core.errors import InputError
from blobhelpers.core.paths import write_text

__all__ = ["MonitorLog"]


class MonitorLog:
    """``monitor_log.jsonl``: one JSON line per processed frame, keyed by the frame's file name.

    Processing a frame again replaces its line (idempotent); lines stay ordered by date. The
    file is rewritten atomically, so an interrupted run never leaves half a line, and the
    read-merge-write of :meth:`update` holds an exclusive lock (``monitor_log.jsonl.lock``, an
    ``fcntl`` lock the kernel releases when a process dies): two daily runs that finish together
    (a job that overlaps the previous one, or a restart) both keep their records.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        out = []
        for n, line in enumerate(self.path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InputError(f"{self.path}: line {n} is not valid JSON ({exc.msg})") from exc
        return out

    @contextlib.contextmanager
    def locked(self):
        """Hold the log's exclusive lock (blocking until another run releases it)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def update(self, records: list[dict]) -> list[dict]:
        """Merge *records* into the log (by frame) under the lock; the merged rows, by date."""
        with self.locked():
            entries = {r["frame"]: r for r in self.read()}
            for r in records:
                entries[r["frame"]] = r
            rows = sorted(entries.values(), key=lambda r: (r.get("date_obs", ""), r["frame"]))
            write_text(self.path, "".join(json.dumps(r, sort_keys=False) + "\n" for r in rows))
        return rows
