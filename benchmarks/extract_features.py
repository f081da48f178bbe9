"""Benchmark: extract_features on its engines: in the stage's process (``frames.engine:
local``) against Ray Data actors (``ray``) with 1 and 2 actors, each building the backbone.

Prints, per engine and actor count, the wall time of ``extract_features`` over a frame store
of random clips (random-weight backbone: the same cost as ImageNet's), clips/s and frames/s,
and for Ray what its start and stop cost alone. Each measurement runs in a fresh process
(imports and the backbone's build are part of what a stage pays; for Ray, each actor
builds its own). The bytes written are the same on every engine (tests/test_frames.py).

    python benchmarks/extract_features.py                        # VGG16 at 64 px, 64 clips
    python benchmarks/extract_features.py --arch inceptionv3_gru --size 75 --clips 128

Results go to docs/benchmarks.md, "The frame store".
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _store(root: Path, clips: int, length: int, size: int, per_shard: int) -> Path:
    """A frame store of ``clips`` random training clips, ``per_shard`` to a shard."""
    import numpy as np
    import pandas as pd

    from actionrec.data.frames import write_store

    rng = np.random.default_rng(0)
    rows = pd.DataFrame({"video": [f"v_{i:05d}" for i in range(clips)], "class_name": "A",
                         "label": 0, "split": "train", "group": 1, "n_frames": length,
                         "n_valid": length})
    data = rng.integers(0, 256, size=(clips, length, size, size, 3), dtype=np.uint8)
    meta = {"size": size, "stored_size": size, "sequence_length": length}
    write_store(root / "frames", rows, data, meta, per_shard)
    return root / "frames"


def child(kind: str, root: Path, arch: str, size: int, workers: int) -> dict:
    """One measurement in this process: ``local``, ``ray`` (``workers`` actors on a Ray
    started for it) or ``ray start`` (Ray's start and stop alone)."""
    start = time.perf_counter()
    if kind == "ray start":
        from actionrec.parallel import local_ray_on_loopback

        local_ray_on_loopback()
        import ray

        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        ray.shutdown()
    else:
        from actionrec.features import extract_features
        from actionrec.models import get_architecture

        settings = get_architecture(arch).settings(image_size=size,
                                                   backbone={"weights": None})
        with tempfile.TemporaryDirectory(dir=root) as out:
            extract_features(arch, settings, root / "frames", Path(out) / "features",
                             progress=False, engine=kind, workers=workers)
    return {"kind": kind, "workers": workers, "seconds": time.perf_counter() - start}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--arch", default="vgg16_bilstm", help="a backbone architecture")
    ap.add_argument("--size", type=int, default=64, help="image size, pixels")
    ap.add_argument("--clips", type=int, default=64)
    ap.add_argument("--length", type=int, default=20, help="sequence length T")
    ap.add_argument("--clips-per-shard", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=2,
                    help="runs per measurement; the fastest is reported (default: %(default)s)")
    ap.add_argument("--child", nargs=3, metavar=("KIND", "ROOT", "WORKERS"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]), args.arch, args.size,
                               int(args.child[2]))))
        return

    import keras

    from actionrec.runtime import runtime_line

    print(runtime_line("extract_features benchmark"))
    print(f"{args.arch} at {args.size} px (random weights), {args.clips} clips of "
          f"T={args.length} in shards of {args.clips_per_shard}, keras {keras.__version__}, "
          f"best of {args.repeat}, each in a fresh process")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _store(root, args.clips, args.length, args.size, args.clips_per_shard)
        for kind, workers in (("local", 1), ("ray", 1), ("ray", 2), ("ray start", 1),
                              ("ray start", 2)):
            cmd = [sys.executable, __file__, "--arch", args.arch, "--size", str(args.size),
                   "--child", kind, str(root), str(workers)]
            runs = [json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True)
                               .stdout.strip().splitlines()[-1]) for _ in range(args.repeat)]
            rows.append(min(runs, key=lambda r: r["seconds"]))
            print(f"  {kind} x{workers}: {rows[-1]['seconds']:.2f} s", flush=True)
    print()
    print("| engine | workers | seconds | clips/s | frames/s |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        rate = (f"{args.clips / r['seconds']:.1f} | {args.clips * args.length / r['seconds']:.0f}"
                if r["kind"] != "ray start" else "— | —")
        print(f"| {r['kind']} | {r['workers']} | {r['seconds']:.2f} | {rate} |")


if __name__ == "__main__":
    main()
