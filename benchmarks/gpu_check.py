"""The GPU check: one command that measures the real run's model paths on an accelerator.

It runs ``benchmarks/input_pipeline.py`` once per architecture, each in its own process
under a wall-time cap, under Keras' JAX backend by default (the GPU machines here have JAX
with CUDA, not TensorFlow), and writes one table into ``--out``: the device, backend and
versions, and per path the model alone against the project's path end to end and their
ratio (``gpu_check.md``, and ``gpu_check.json`` for a program). The paths, at the real
run's sizes (T = 20):

- ``train lrcn`` / ``train convlstm`` at 64 px with params.yaml's augmentation (the
  ``train@`` stages of the frame models, ``FrameSequence`` read by threads);
- ``extract_features`` of InceptionV3 and VGG16 at 224 px and EfficientNetB7 at 600 px,
  random weights (the ``extract_features@`` stages: the same cost as ImageNet's);
- the three heads on their cached features (the ``train@`` stages of the backbone models).

These are the rehearsal's model stages (``benchmarks/rehearsal.py``) as their own code
runs them, without DVC and MLflow, which the GPU machine lacks. Targets (issue 12): ratio
>= 0.8 for the frame models with augmentation and for the heads, >= 0.5 for InceptionV3 /
VGG16 extraction, >= 0.8 for EfficientNetB7's.

    python benchmarks/gpu_check.py --out /tmp/gpu          # on the GPU machine: ~6 min
    python benchmarks/gpu_check.py --out /tmp/cpu --small  # the same on a CPU, small sizes
    python benchmarks/gpu_check.py --dry-run               # what it would run, at full size

On a machine without a package registry, carry what it lacks first
(``scripts/gpu_wheels.sh``; docs/benchmarks.md, "The GPU check").
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: (part, input_pipeline.py arguments at full size, extra arguments at --small, cap in s)
PARTS = [
    ("lrcn", ["--only", "lrcn", "--groups", "10"], ["--size", "lrcn=32"], 60),
    ("convlstm", ["--only", "convlstm"], ["--size", "convlstm=32"], 60),
    ("inceptionv3_gru", ["--only", "inceptionv3_gru"],
     ["--size", "inceptionv3_gru=75", "--feature-clips", "inceptionv3_gru=4"], 90),
    ("vgg16_bilstm", ["--only", "vgg16_bilstm", "--feature-clips", "vgg16_bilstm=16"],
     ["--size", "vgg16_bilstm=32", "--feature-clips", "vgg16_bilstm=4"], 90),
    ("efficientnetb7_lstm", ["--only", "efficientnetb7_lstm", "--feature-clips",
                             "efficientnetb7_lstm=40"],
     ["--size", "efficientnetb7_lstm=32", "--feature-clips", "efficientnetb7_lstm=4"], 150),
]
#: What --small changes for every part: fewer, shorter clips, one timed epoch.
SMALL = ["--length", "8", "--groups", "2", "--clips-per-group", "2", "--repeat", "1"]
ROW = re.compile(r"^\| (train|extract_features) .+\|$")


def commands(small: bool) -> list[tuple[str, list[str], int]]:
    """``[(part, argv, cap in s)]`` of the check: full size, or ``small``."""
    out = []
    for name, full, reduced, cap in PARTS:
        args = [*full[:2], *SMALL, *reduced] if small else full  # --only ARCH first
        out.append((name, [sys.executable, str(HERE / "input_pipeline.py"), *args], cap))
    return out


def run_part(name: str, argv: list[str], cap: int, env: dict[str, str],
             log: Path) -> dict:
    """Run one part under its cap; returns ``{"part", "status", "seconds", "rows",
    "runtime"}`` (``status``: ok, failed, or timed out after ``cap`` s)."""
    start = time.monotonic()
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=cap)
        output, status = proc.stdout + proc.stderr, "ok" if proc.returncode == 0 else \
            f"failed (exit {proc.returncode})"
    except subprocess.TimeoutExpired as err:
        output = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else \
            (err.stdout or "")
        status = f"timed out after {cap} s"
    log.write_text(output)
    rows = [line for line in output.splitlines() if ROW.match(line)]
    runtime = next((line for line in output.splitlines()
                    if line.startswith("input_pipeline benchmark:")), "")
    return {"part": name, "status": status, "seconds": round(time.monotonic() - start, 1),
            "rows": rows, "runtime": runtime.removeprefix("input_pipeline benchmark: ")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="folder for gpu_check.md, gpu_check.json and "
                                             "each part's log (required unless --dry-run)")
    ap.add_argument("--small", action="store_true",
                    help="small sizes, for a CPU (~3 min on 2 cores): proves the command")
    ap.add_argument("--dry-run", action="store_true",
                    help="print what would run (at full size unless --small) and stop")
    ap.add_argument("--backend", default="jax", choices=["jax", "tensorflow", "torch"],
                    help="Keras backend (default: %(default)s; the GPU machine has no "
                         "TensorFlow)")
    ap.add_argument("--only", nargs="+", choices=[p[0] for p in PARTS],
                    help="these parts only")
    args = ap.parse_args(argv)
    parts = [p for p in commands(args.small) if not args.only or p[0] in args.only]
    if args.dry_run:
        print(f"gpu_check: {len(parts)} parts, KERAS_BACKEND={args.backend}, "
              f"{sum(c for *_, c in parts)} s at most:")
        for name, command, cap in parts:
            print(f"  {name} (cap {cap} s): {' '.join(command[1:])}")
        return 0
    if args.out is None:
        ap.error("--out is required (a folder for the table and the logs)")
    args.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "KERAS_BACKEND": args.backend, "PYTHONUNBUFFERED": "1"}
    src = str(HERE.parent / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    results = []
    for name, command, cap in parts:
        print(f"gpu_check: {name} (cap {cap} s) ...", flush=True)
        res = run_part(name, command, cap, env, args.out / f"{name}.log")
        print(f"gpu_check: {name}: {res['status']} in {res['seconds']} s", flush=True)
        results.append(res)
    runtime = next((r["runtime"] for r in results if r["runtime"]), "(no part started)")
    lines = [f"# GPU check ({'small sizes' if args.small else 'the real run sizes'})", "",
             f"Runtime: {runtime}", "",
             "| work | unit | model alone | project end to end | ratio | notes |",
             "|---|---|---:|---:|---:|---|", *[row for r in results for row in r["rows"]], "",
             "| part | status | seconds |", "|---|---|---:|",
             *[f"| {r['part']} | {r['status']} | {r['seconds']} |" for r in results]]
    (args.out / "gpu_check.md").write_text("\n".join(lines) + "\n")
    (args.out / "gpu_check.json").write_text(json.dumps(
        {"small": args.small, "backend": args.backend, "runtime": runtime, "parts": results},
        indent=1) + "\n")
    print("\n".join(lines))
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
