"""Benchmark: the ``rehearsal`` profile, stage by stage: wall time and peak memory.

The ``rehearsal`` profile (params.yaml) is the real run's scale without the dataset: 810
synthetic clips of 320x240 at 25 fps, 4-10 s each, 5 classes; T = 20, the real image sizes
and random backbone weights. This script runs it with real ``dvc repro``, one stage at a
time, in a fresh project (a copy of this repository's pipeline, as ``make demo`` makes),
and prints per stage the wall time and the peak resident memory of the stage's whole
process tree (DVC, the stage and its worker processes; sampled every 0.2 s with psutil).

    python benchmarks/rehearsal.py                       # data stages + one epoch of
                                                         # LRCN and ConvLSTM (2 CPU cores)
    python benchmarks/rehearsal.py --stages extract_frames train@lrcn --epochs 1
    python benchmarks/rehearsal.py --all                 # every stage (needs a GPU:
                                                         # EfficientNetB7 at 600 px runs
                                                         # ~0.6 frames/s on 2 CPU cores)

``--epochs`` sets every architecture's epochs (default 1: an epoch's cost is what a
rehearsal measures). ``--keep DIR`` makes the project there and leaves it; a project
already there is reused (stages DVC finds up to date take seconds). Results go to
docs/benchmarks.md, "Rehearsal".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA_STAGES = ["download", "subsample", "validate", "extract_frames"]
CPU_STAGES = [*DATA_STAGES, "extract_features@lrcn", "train@lrcn", "extract_features@convlstm",
              "train@convlstm"]  # (extract_features@ of a from-scratch model: a stub, ~5 s)


def _tree_rss(proc) -> int:
    """Resident bytes of ``proc`` and all its descendants (0 for those gone meanwhile)."""
    import psutil

    total = 0
    with contextlib.suppress(psutil.Error):
        for p in [proc, *proc.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
    return total


def run_stage(project: Path, stage: str, log) -> tuple[float, int, list[tuple[float, int]]]:
    """``dvc repro --single-item <stage>``: (wall seconds, peak tree RSS in bytes, the
    samples as (seconds since start, tree RSS bytes), one every 0.2 s).

    Raises:
        SystemExit: the stage failed (its log is in ``log``).
    """
    import psutil

    start = time.perf_counter()
    child = subprocess.Popen(["dvc", "repro", "--single-item", stage], cwd=project,
                             stdout=log, stderr=subprocess.STDOUT)
    proc, samples = psutil.Process(child.pid), []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append((time.perf_counter() - start, _tree_rss(proc)))
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    rc = child.wait()
    done.set()
    sampler.join()
    if rc:
        sys.exit(f"error: stage {stage} failed (exit {rc}); see {log.name}")
    return time.perf_counter() - start, max((r for _, r in samples), default=0), samples


def make_project(dst: Path, epochs: int | None, profile: str = "rehearsal",
                 edit=None) -> None:
    """A git + DVC project holding this repository's pipeline, ``profile`` applied
    (``actionrec profile <profile> --apply``), every architecture's epochs set to
    ``epochs`` (None: the profile's), then ``edit(params_dict)`` if given."""
    import yaml

    dst.mkdir(parents=True)
    for name in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy(REPO / name, dst / name)
    for name in ("stages", "src"):
        shutil.copytree(REPO / name, dst / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"],
                ["actionrec", "profile", profile, "--apply"]):
        subprocess.run(cmd, cwd=dst, check=True, capture_output=True)
    params = yaml.safe_load((dst / "params.yaml").read_text())
    if epochs is not None:
        for section in params["models"].values():
            section["epochs"] = epochs
    if edit is not None:
        edit(params)
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stages", nargs="+", default=CPU_STAGES,
                    help="stages in order (default: %(default)s); upstream ones must be run")
    ap.add_argument("--all", action="store_true", help="every stage of dvc.yaml, in order")
    ap.add_argument("--epochs", type=int, default=1, help="epochs of every architecture")
    ap.add_argument("--keep", type=Path, help="make the project here and keep it")
    args = ap.parse_args()

    from actionrec.runtime import runtime_line

    tmp = None
    if args.keep:
        project = args.keep.resolve()
    else:
        tmp = tempfile.TemporaryDirectory()
        project = Path(tmp.name) / "rehearsal"
    if not (project / "dvc.yaml").exists():
        make_project(project, args.epochs)
    stages = args.stages
    if args.all:
        stages = subprocess.run(["dvc", "stage", "list", "--name-only"], cwd=project,
                                check=True, capture_output=True, text=True).stdout.split()
    print(runtime_line("rehearsal benchmark"), flush=True)
    print(f"project {project}; epochs {args.epochs}; stage logs in {project}/logs/", flush=True)
    (project / "logs").mkdir(exist_ok=True)
    rows = []
    for stage in stages:
        with open(project / "logs" / f"{stage.replace('@', '_')}.log", "w") as log:
            wall, peak, _ = run_stage(project, stage, log)
        rows.append((stage, wall, peak))
        print(f"  {stage}: {wall:.0f} s, peak RSS {peak / 2**30:.2f} GiB", flush=True)
    report = project / "reports" / "extract_frames.json"
    if report.exists():
        r = json.loads(report.read_text())
        print(f"extract_frames: {r['n_extracted']} clips stored, {r['n_excluded']} excluded")
    print()
    print("| stage | wall time | peak RSS (process tree) |")
    print("|---|---:|---:|")
    for stage, wall, peak in rows:
        print(f"| {stage} | {wall:.0f} s | {peak / 2**30:.2f} GiB |")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
