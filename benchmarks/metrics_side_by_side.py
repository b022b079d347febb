"""Two runs' headline metrics side by side: every number that differs between two `metrics/` folders.

`dvc metrics diff` compares git revisions; this compares folders, e.g. the committed default with a
profile run kept by the pipeline benchmark:

    python benchmarks/bench_pipeline.py --profile quick --keep /tmp/quick
    python benchmarks/metrics_side_by_side.py metrics /tmp/quick/metrics [--all] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def load(folder: Path) -> dict[str, dict]:
    """``{stage file stem: flat metrics}`` of every ``*.json`` directly in *folder*."""
    if not folder.is_dir():
        sys.exit(f"{folder}: not a folder")
    out = {}
    for f in sorted(folder.glob("*.json")):
        try:
            out[f.stem] = flatten(json.loads(f.read_text()))
        except (OSError, ValueError) as exc:
            sys.exit(f"{f}: not a readable JSON metrics file ({exc})")
    return out


def fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def rows(a: dict[str, dict], b: dict[str, dict], everything: bool = False) -> list[tuple[str, str, str, str]]:
    """``(stage, key, value in a, value in b)`` for every key of either side (only differing ones unless *everything*)."""
    out = []
    for stage in sorted(set(a) | set(b)):
        x, y = a.get(stage, {}), b.get(stage, {})
        for key in list(x) + [k for k in y if k not in x]:
            if everything or x.get(key) != y.get(key):
                out.append((stage, key, fmt(x.get(key)), fmt(y.get(key))))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path, help="metrics folder (e.g. metrics)")
    ap.add_argument("b", type=Path, help="metrics folder to compare with")
    ap.add_argument("--all", action="store_true", help="also the numbers that are equal")
    ap.add_argument("--markdown", action="store_true", help="a Markdown table")
    args = ap.parse_args(argv)
    table = rows(load(args.a), load(args.b), args.all)
    if args.markdown:
        print(f"| stage | metric | {args.a} | {args.b} |\n|---|---|---|---|")
        for r in table:
            print("| " + " | ".join(r) + " |")
    else:
        w = max((len(r[1]) for r in table), default=10)
        for r in table:
            print(f"{r[0]:<18} {r[1]:<{w}} {r[2]:>12} {r[3]:>12}")
    print(f"{len(table)} numbers differ" if not args.all else f"{len(table)} numbers", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
