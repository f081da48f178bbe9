"""Benchmark: the extract_frames stage against a bare OpenCV decode loop, same files, same workers.

Prints clips/s, frames/s, the ratio stage / bare decode (target <= 1.25) and the peak
RSS of the stage at two dataset sizes (target: it does not grow with the number of
videos). Each measurement runs in a fresh process so that peak RSS is its own.

    python benchmarks/extract_frames.py                 # synthetic 320x240 clips, like UCF101
    python benchmarks/extract_frames.py --videos 40 160 --frames 150 --workers 2
    python benchmarks/extract_frames.py --workers 1 --engines local ray   # and Ray's start-up

The stage reads the decoded frame count from the validate stage's probe, so one
decoding pass suffices; the probe's own cost is printed too (it is part of
``validate``, not of ``extract_frames``). Each measurement is the fastest of
``--repeat`` runs (as ``timeit`` does), with the files in the page cache.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2


def _bare_decode(path: str) -> int:
    cap = cv2.VideoCapture(path)
    n = 0
    while True:
        ok, _ = cap.read()
        if not ok:
            break
        n += 1
    cap.release()
    return n


def _peak_rss_mib() -> tuple[float, float]:
    """(this process, largest child) peak RSS in MiB (Linux reports KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, kids


def child(kind: str, root: Path, workers: int, sizes: list[int], length: int,
          clips_per_shard: int) -> dict:
    """One measurement in this process: ``bare``, ``probe``, ``stage`` (the local engine),
    ``stage ray`` (Ray Data on a Ray started for it) or ``ray start`` (Ray's start and stop
    alone)."""
    import pandas as pd

    from actionrec.config import FrameSettings
    from actionrec.data.frames import extract_frames
    from actionrec.data.splits import build_manifest
    from actionrec.data.validation import probe_videos
    from actionrec.parallel import imap_progress

    manifest, classes, _ = build_manifest(root / "ucfTrainTestlist", root / "UCF-101", 1, None,
                                          _classes(root), 0.0, 0)
    videos = root / "UCF-101"
    start = time.perf_counter()
    if kind == "bare":
        frames = sum(imap_progress(_bare_decode, [str(videos / p) for p in manifest["path"]],
                                   workers, desc="bare decode", progress=False))
    elif kind == "probe":
        probed = probe_videos(list(manifest["path"]), videos, workers, progress=False)
        frames = int(probed["n_frames"].sum())
        probed.to_csv(root / "probe.csv", index=False)
    elif kind == "ray start":
        from actionrec.parallel import local_ray_on_loopback

        local_ray_on_loopback()
        import ray

        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        ray.shutdown()
        frames = 0
    else:
        probed = pd.read_csv(root / "probe.csv")
        engine = "ray" if kind == "stage ray" else "local"
        with tempfile.TemporaryDirectory(dir=root) as out:
            extract_frames(manifest, probed, classes, videos, sizes,
                           FrameSettings(sequence_length=length, workers=workers,
                                         engine=engine, clips_per_shard=clips_per_shard),
                           Path(out) / "frames", 0.0, Path(out) / "report.json", progress=False)
            frames = int(probed["n_frames"].sum())
    seconds = time.perf_counter() - start
    own, kids = _peak_rss_mib()
    return {"kind": kind, "clips": len(manifest), "frames": frames, "seconds": seconds,
            "rss_main_mib": own, "rss_worker_mib": kids}


def _classes(root: Path) -> list[str]:
    return [line.split()[1] for line in (root / "ucfTrainTestlist" / "classInd.txt")
            .read_text().splitlines() if line.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--videos", type=int, nargs=2, default=[40, 160],
                    help="two dataset sizes, clips (default: %(default)s)")
    ap.add_argument("--frames", type=int, default=150, help="frames per clip (UCF101 mean ~186)")
    ap.add_argument("--workers", type=int, default=0, help="processes; 0 = all cores")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 224, 600],
                    help="image sizes (default: those of the five architectures in params.yaml)")
    ap.add_argument("--length", type=int, default=20, help="sequence length T")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs per measurement; the fastest is reported (default: %(default)s)")
    ap.add_argument("--clips-per-shard", type=int, default=16,
                    help="frames.clips_per_shard (default: %(default)s: a few shards a worker)")
    ap.add_argument("--engines", nargs="+", default=["local"], choices=["local", "ray"],
                    help="frames.engine values to measure (ray: also its start-up alone)")
    ap.add_argument("--child", nargs=2, metavar=("KIND", "ROOT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]), args.workers, args.sizes,
                               args.length, args.clips_per_shard)))
        return

    from actionrec.data.synthetic import generate
    from actionrec.parallel import resolve_workers

    workers = resolve_workers(args.workers)
    print(f"extract_frames benchmark: {workers} worker(s), engines {args.engines}, "
          f"{args.clips_per_shard} clips per shard, sizes {args.sizes}, T={args.length}, "
          f"320x240 XVID clips of {args.frames} frames, OpenCV {cv2.__version__}, "
          f"best of {args.repeat}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.videos:
            root = Path(tmp) / f"n{n}"
            clips_per_group = 2
            groups = max(2, n // (5 * clips_per_group))
            generate(root, ["sit_down", "stand_up", "wave", "jumping_jack", "walk"], groups, 1,
                     clips_per_group, args.frames, args.frames, 320, 240, 25.0, seed=1,
                     progress=False)
            kinds = ["bare", "probe", *(["stage"] if "local" in args.engines else []),
                     *(["stage ray", "ray start"] if "ray" in args.engines else [])]
            for kind in kinds:
                cmd = [sys.executable, __file__, "--child", kind, str(root), "--workers",
                       str(workers), "--length", str(args.length), "--clips-per-shard",
                       str(args.clips_per_shard), "--sizes", *map(str, args.sizes)]
                runs = [json.loads(subprocess.run(cmd, check=True, capture_output=True,
                                                  text=True).stdout.strip().splitlines()[-1])
                        for _ in range(args.repeat)]
                rows.append(min(runs, key=lambda r: r["seconds"]))
    print()
    print("| clips | measurement | seconds | clips/s | frames/s | peak RSS main / worker (MiB) |")
    print("|---:|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['clips']} | {r['kind']} | {r['seconds']:.2f} | "
              f"{r['clips'] / r['seconds']:.1f} | {r['frames'] / r['seconds']:.0f} | "
              f"{r['rss_main_mib']:.0f} / {r['rss_worker_mib']:.0f} |")
    print()
    for n in {r["clips"] for r in rows}:
        t = {r["kind"]: r["seconds"] for r in rows if r["clips"] == n}
        for stage in ("stage", "stage ray"):
            if stage in t:
                both = (t["probe"] + t[stage]) / t["bare"]
                print(f"{n} clips: {stage} / bare decode = {t[stage] / t['bare']:.2f} (target "
                      f"<= 1.25); probe + {stage} / bare = {both:.2f}")


if __name__ == "__main__":
    main()
