"""`make microbench`'s record: pytest-benchmark's JSON without its raw samples.

pytest-benchmark keeps every timing of every round (16 MB for ten benchmarks); the results
worth committing are its statistics, the machine and the commit. Usage:
`python -m bench.microsummary RAW.json SUMMARY.json`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# Per benchmark: the raw timings, and nothing else, are left out.
_RAW = "data"


def summarise(raw: dict[str, Any]) -> dict[str, Any]:
    benchmarks = [
        {**bench, "stats": {k: v for k, v in bench["stats"].items() if k != _RAW}}
        for bench in raw["benchmarks"]
    ]
    return {
        **raw,
        "benchmarks": benchmarks,
        "note": "pytest-benchmark's statistics; its raw samples dropped (bench/microsummary.py)",
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m bench.microsummary RAW.json SUMMARY.json", file=sys.stderr)
        return 2
    raw, summary = (Path(a) for a in argv)
    record = summarise(json.loads(raw.read_text()))
    summary.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
