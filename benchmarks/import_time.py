"""How heavy is ``import ds_magic``? Measured against ``import httpx`` in the same run.

Each import runs in a fresh interpreter, several times, and the median is kept (machines are noisy).
Goal (issue 2): ``import ds_magic`` plus first use of ``ds_magic.Client`` ≤ 1.5 × ``import httpx``.

    python benchmarks/import_time.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = {
    "python (baseline)": "pass",
    "import httpx": "import httpx",
    "import ds_magic": "import ds_magic",
    "import ds_magic; ds_magic.Client": "import ds_magic; ds_magic.Client",
}


def measure(code: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    results = {name: measure(code, args.runs) for name, code in CASES.items()}
    base = results["python (baseline)"]
    httpx_cost = results["import httpx"] - base
    print(f"{'case':40s} {'median s':>9s} {'import cost s':>14s} {'× httpx':>8s}")
    for name, t in results.items():
        cost = t - base
        ratio = cost / httpx_cost if httpx_cost > 0 and name != "python (baseline)" else float("nan")
        print(f"{name:40s} {t:9.4f} {cost:14.4f} {ratio:8.2f}")
    ratio_client = (results["import ds_magic; ds_magic.Client"] - base) / httpx_cost
    print(f"\nimport ds_magic + Client = {ratio_client:.2f} × import httpx (goal ≤ 1.5)")
    # Jupyter pieces must not be imported by the core.
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, ds_magic; ds_magic.Client; print(sorted(m for m in ('IPython','ipywidgets','markdown_it') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"Jupyter modules imported by the core: {out}")


if __name__ == "__main__":
    main()
