"""How far floating-point numerics move the CI gate's metrics: the tiny profile under four
settings that change TensorFlow's reduction order, as another x86-64 CPU would.

Settings (environment of the whole run, every stage):

- ``TF_NUM_INTRAOP_THREADS`` 1 or 2: how a reduction is split over threads;
- ``TF_ENABLE_ONEDNN_OPTS`` 1 or 0: oneDNN's kernels (blocked layouts, its own
  accumulation order) or TensorFlow's Eigen kernels.

Each setting runs ``ci/tiny_pipeline.sh --run-only`` (real ``dvc repro`` of the whole
tiny profile) in its own scratch folder, then the gated metrics (``gate.metrics``) of every
architecture are printed side by side with the committed baseline, the largest drop from
the baseline, and the largest spread (baseline included: another CPU may land anywhere in
that range). The gate's tolerance (``gate.tolerance``, per architecture) follows a rule:
1.5 times that architecture's largest spread, rounded up to a whole number of test clips
(docs/benchmarks.md, "The gate under other numerics").

    python benchmarks/gate_numerics.py --out /tmp/numerics            # ~40 min on 2 cores
    python benchmarks/gate_numerics.py --out /tmp/numerics --jobs 2   # two runs at a time
    python benchmarks/gate_numerics.py --out /tmp/numerics --report   # table of finished runs

A finished run is reused (the script's own digest check), so an interrupted measurement
resumes where it stopped.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

SETTINGS = {
    "2 threads, oneDNN on": {"TF_NUM_INTRAOP_THREADS": "2", "TF_ENABLE_ONEDNN_OPTS": "1"},
    "1 thread, oneDNN on": {"TF_NUM_INTRAOP_THREADS": "1", "TF_ENABLE_ONEDNN_OPTS": "1"},
    "2 threads, oneDNN off": {"TF_NUM_INTRAOP_THREADS": "2", "TF_ENABLE_ONEDNN_OPTS": "0"},
    "1 thread, oneDNN off": {"TF_NUM_INTRAOP_THREADS": "1", "TF_ENABLE_ONEDNN_OPTS": "0"},
}


def _folder(out: Path, name: str) -> Path:
    return out / name.replace(", ", "-").replace(" ", "_")


def run_setting(out: Path, name: str) -> tuple[str, float, int]:
    """Run (or reuse) the tiny profile under setting ``name``; returns (name, seconds, rc)."""
    work = _folder(out, name)
    env = {**os.environ, **SETTINGS[name], "ACTIONREC_CI_WORK": str(work)}
    work.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(f"{work}.log", "w") as log:
        rc = subprocess.call(["bash", str(ROOT / "ci" / "tiny_pipeline.sh"), "--run-only"],
                             cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    return name, time.monotonic() - start, rc


def report(out: Path) -> None:
    """Print the Markdown table of the finished runs under ``out``."""
    from actionrec.config import load_params
    from actionrec.gate import read_metrics

    gate = load_params(ROOT / "params.yaml").gate
    baseline = read_metrics(ROOT / gate.baseline)
    # finished runs only: ci/tiny_pipeline.sh writes .run-digest last, and a scratch project
    # holds the committed baseline as its reports until its own evaluate stages replace them
    runs = {n: read_metrics(_folder(out, n) / "reports" / "evaluate") for n in SETTINGS
            if (_folder(out, n) / ".run-digest").is_file()}
    names = list(runs)
    if not names:
        sys.exit(f"error: no finished run under {out} (see the .log files there; run this "
                 "script from the .venv, `source .venv/bin/activate`, so that `actionrec` and "
                 "`dvc` are on PATH)")
    print(f"| architecture | metric | baseline | {' | '.join(names)} | largest drop | spread |")
    print(f"|---|---|---:|{'---:|' * len(names)}---:|---:|")
    worst_drop = worst_spread = 0.0
    spreads: dict[str, float] = {}
    for arch in sorted(baseline):
        for metric in gate.metrics_for(arch):
            base = baseline[arch].get(metric)
            values = [runs[n].get(arch, {}).get(metric) for n in names]
            seen = [v for v in values if isinstance(v, float)]
            drop = max([0.0, *(base - v for v in seen)]) if base is not None else 0.0
            # the baseline is one more setting: a CPU may land anywhere in this range
            spread = max([*seen, base]) - min([*seen, base]) if seen else 0.0
            worst_drop, worst_spread = max(worst_drop, drop), max(worst_spread, spread)
            spreads[arch] = max(spreads.get(arch, 0.0), spread)
            cells = " | ".join("—" if v is None else f"{v:.3f}" for v in values)
            print(f"| {arch} | {metric} | {base:.3f} | {cells} | {drop:+.3f} | {spread:.3f} |")
    n_test = min(m.get("n_test", 1) for m in baseline.values())
    print(f"\nLargest drop from the baseline over {len(names)} settings: {worst_drop:.3f}; "
          f"largest spread (baseline included): {worst_spread:.3f}.")
    print(f"Rule, per architecture: 1.5 x its largest spread, rounded up to whole test clips "
          f"(of {n_test}):")
    for arch, spread in spreads.items():
        rule = math.ceil(1.5 * spread * n_test - 1e-9) / n_test
        tol = gate.tolerance_for(arch)
        print(f"- {arch}: spread {spread:.3f}, rule {rule:.3f}; gate.tolerance {tol:g} "
              f"({'covers it' if tol >= rule - 1e-9 else 'TOO SMALL'})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder for the four runs")
    ap.add_argument("--jobs", type=int, default=1, help="runs at a time (default 1)")
    ap.add_argument("--report", action="store_true", help="only print the table")
    args = ap.parse_args()
    # the runs call `actionrec` and `dvc`: this interpreter's bin/ first, as `make` puts it
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    if not args.report:
        with ThreadPoolExecutor(args.jobs) as pool:
            for name, seconds, rc in pool.map(lambda n: run_setting(args.out, n), SETTINGS):
                print(f"{name}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} in {seconds:.0f} s "
                      f"(log: {_folder(args.out, name)}.log)", flush=True)
    report(args.out)


if __name__ == "__main__":
    main()
