"""Benchmark: the frame store per file (one ``.npy`` per clip) against in shards, for DVC.

Simulates a Kinetics-sized store of tiny clips (Kinetics-700: ~650k clips) and times what
DVC does with it: ``dvc add`` (hash every file and fill the cache: what ``dvc commit`` of a
stage's outputs does), ``dvc status`` with nothing changed, ``dvc push`` to a local remote,
then one clip rewritten and ``dvc status`` + ``dvc commit`` again. Also random reads of
single clips from the page cache (per-file ``np.load`` against :class:`FrameStore`), and
``--formats``: a shard as ``.npy`` (memory-mapped, digest checked, as the store reads it)
against ArrayRecord (``group_size:1``, random access; where ``array-record`` is installed:
``pip install array-record==0.8.6``) at real clip sizes; ``--input``: training's input,
``FrameSequence`` batches of a shuffled epoch, read from the sharded store against the
same clips as one ``.npy`` per clip, at the tiny profile's and the rehearsal's sizes.
Prints Markdown tables (the rows of docs/benchmarks.md, "The frame store").

    python benchmarks/frame_store.py                          # 650k clips, both layouts
    python benchmarks/frame_store.py --clips 20000 --layouts files shards
    python benchmarks/frame_store.py --clips 650000 --clips-per-shard 2048
    python benchmarks/frame_store.py --formats            # .npy shard vs ArrayRecord only
    python benchmarks/frame_store.py --input              # FrameSequence: shards vs files
    KERAS_BACKEND=jax python benchmarks/frame_store.py --input

Times are wall seconds with CPU seconds (user + sys of this process and its children)
beside them; the clips are ``(T, 8, 8, 3)`` uint8 (the file count, not the bytes, is what
grows DVC's work per file; the bytes are hashed at disk speed either way).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _cpu() -> float:
    own, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(cmd: list[str], cwd: Path, ok: tuple[int, ...] = (0,)) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), _cpu()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode not in ok:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return time.perf_counter() - wall, _cpu() - cpu


def _rows(n: int) -> pd.DataFrame:
    classes = [f"Class{c:03d}" for c in range(700)]
    return pd.DataFrame({
        "video": [f"v_{classes[i % 700]}_{i:07d}" for i in range(n)],
        "class_name": [classes[i % 700] for i in range(n)], "label": np.arange(n) % 700,
        "split": "train", "group": np.arange(n) // 4, "n_frames": 250, "n_valid": 4})


def _write(layout: str, store: Path, n: int, t: int, clips_per_shard: int) -> np.ndarray:
    """The store of ``n`` clips; returns one clip's array (for the rewrite)."""
    from actionrec.data.frames import clip_key, save_npy, write_store

    rng = np.random.default_rng(0)
    clips = rng.integers(0, 255, (n, t, 8, 8, 3), dtype=np.uint8)
    rows = _rows(n)
    meta = {"size": 8, "files_in": "8", "stored_size": 8, "sequence_length": t}
    if layout == "shards":
        write_store(store, rows, clips, meta, clips_per_shard)
    else:  # the per-file layout of actionrec <= 0.x: <split>/<Class>/<video>.npy
        for i, r in enumerate(rows.itertuples()):
            save_npy(store / f"{clip_key(r.split, r.class_name, r.video)}.npy", clips[i])
    return clips[0]


def _reads(layout: str, store: Path, n: int, k: int) -> float:
    """Clips per second, ``k`` random single-clip reads (page cache warm)."""
    from actionrec.data.frames import clip_key, load_npy, open_store

    rows = _rows(n)
    pick = np.random.default_rng(1).integers(0, n, k)
    if layout == "shards":
        fs = open_store(store)
        keys = [fs.index["clip"].iloc[i] for i in pick]
        read = fs.read
    else:
        keys = [store / f"{clip_key('train', rows['class_name'][i], rows['video'][i])}.npy"
                for i in pick]
        read = load_npy
    for key in keys[: k // 10]:
        read(key)
    start = time.perf_counter()
    for key in keys:
        read(key)
    return k / (time.perf_counter() - start)


def measure(layout: str, root: Path, n: int, t: int, clips_per_shard: int) -> dict:
    repo = root / layout
    repo.mkdir()
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"],
                ["dvc", "remote", "add", "-d", "local", str(root / f"{layout}-remote")]):
        _timed(cmd, repo)
    store = repo / "store"
    wall, cpu = time.perf_counter(), _cpu()
    clip = _write(layout, store, n, t, clips_per_shard)
    out = {"layout": layout, "files": sum(1 for p in store.rglob("*") if p.is_file()),
           "write": (time.perf_counter() - wall, _cpu() - cpu)}
    out["add"] = _timed(["dvc", "add", "-q", "store"], repo)
    out["status"] = _timed(["dvc", "status", "-q"], repo)
    out["push"] = _timed(["dvc", "push", "-q"], repo)
    out["reads"] = _reads(layout, store, n, 20000)
    # one clip changes (a shard or a file rewritten whole, as extraction writes them)
    from actionrec.data.frames import clip_key, save_npy

    if layout == "shards":
        shard = store / pd.read_csv(store / "index.csv", nrows=1)["shard"].iloc[0]
        changed = np.load(shard)
        changed[0] = 255 - clip
        save_npy(shard, changed)
    else:
        r = _rows(1).iloc[0]
        save_npy(store / f"{clip_key(r.split, r.class_name, r.video)}.npy", 255 - clip)
    out["status changed"] = _timed(["dvc", "status", "-q"], repo, ok=(1,))  # 1: changed
    out["commit"] = _timed(["dvc", "commit", "-q", "-f", "store.dvc"], repo)
    return out


def formats(k: int = 2000) -> None:
    """Random single-clip reads of one shard of ``(20, S, S, 3)`` uint8 clips, page cache
    warm: ``.npy`` through :class:`FrameStore` against ArrayRecord, the same clips."""
    from actionrec.data.frames import open_store, write_store

    try:
        from array_record.python.array_record_module import ArrayRecordReader, ArrayRecordWriter
    except ImportError:
        ArrayRecordReader = None  # noqa: N806
    print("\n| clip | .npy shard (FrameStore) | ArrayRecord |\n|---|---:|---:|")
    for side, n in ((64, 1000), (224, 200)):
        clips = np.random.default_rng(0).integers(0, 255, (n, 20, side, side, 3), np.uint8)
        with tempfile.TemporaryDirectory() as tmp:
            rows = _rows(n)
            write_store(Path(tmp) / "npy", rows, clips, {"size": side}, n)
            store = open_store(Path(tmp) / "npy")
            keys = store.index["clip"].tolist()
            pick = np.random.default_rng(1).integers(0, n, k)
            rates = [_rate(lambda i, s=store, c=keys: s.read(c[i]), pick)]
            if ArrayRecordReader is not None:
                writer = ArrayRecordWriter(f"{tmp}/s.array_record", "group_size:1")
                for c in clips:
                    writer.write(c.tobytes())
                writer.close()
                reader = ArrayRecordReader(f"{tmp}/s.array_record", "readahead_buffer_size:0")
                rates.append(_rate(lambda i, r=reader, x=side: np.frombuffer(
                    r.read([int(i)])[0], np.uint8).reshape(20, x, x, 3), pick))
        cells = [f"{r:,.0f} clips/s" for r in rates] + ["(not installed)"] * (2 - len(rates))
        print(f"| (20, {side}, {side}, 3) uint8 | " + " | ".join(cells) + " |", flush=True)


def input_throughput(repeat: int = 3) -> None:
    """Clips per second of ``FrameSequence`` over a shuffled epoch (one reader thread: what
    each of Keras' enqueuer threads does), sharded against per-file, the same clips."""
    import keras

    from actionrec.data.datasets import FrameSequence
    from actionrec.data.frames import clip_key, load_npy, save_npy, write_store

    class PerFile(FrameSequence):  # the per-file store: one np.load per clip
        def _load(self, sel):
            x = np.stack([load_npy(self.store / f"{self.clips[j]}.npy") for j in sel])
            return x, np.eye(self.num_classes, dtype=np.float32)[self.labels[sel]]

    print(f"\nKeras {keras.__version__}, backend {keras.backend.backend()}")
    print("| profile | clip | clips | sharded | per file | sharded / per file |")
    print("|---|---|---:|---:|---:|---:|")
    for profile, t, side, n, batch in (("tiny", 8, 32, 250, 8), ("rehearsal", 20, 64, 530, 8),
                                       ("rehearsal", 20, 224, 530, 8)):
        clips = np.random.default_rng(0).integers(0, 255, (n, t, side, side, 3), np.uint8)
        rows = _rows(n)
        rows["label"] = np.arange(n) % 5
        rows["class_name"] = [f"Class{c}" for c in rows["label"]]
        with tempfile.TemporaryDirectory() as tmp:
            sharded, files = Path(tmp) / "sharded", Path(tmp) / "files"
            write_store(sharded, rows, clips, {"size": side, "stored_size": side,
                                               "sequence_length": t}, 64)
            index = pd.read_csv(sharded / "index.csv")
            for i, r in enumerate(index.itertuples()):
                save_npy(files / f"{clip_key(r.split, r.class_name, r.video)}.npy", clips[i])
            (files / "meta.json").write_text((sharded / "meta.json").read_text())
            index.to_csv(files / "index.csv", index=False)
            rates = []
            for kind, store in ((FrameSequence, sharded), (PerFile, files)):
                seq = kind(store, index, 5, batch, shuffle=True, seed=0)
                best = np.inf
                for epoch in range(repeat + 1):
                    seq.set_epoch(epoch)
                    start = time.perf_counter()
                    for i in range(len(seq)):
                        seq[i]
                    best = min(best, time.perf_counter() - start) if epoch else best
                rates.append(n / best)
        print(f"| {profile} | ({t}, {side}, {side}, 3) | {n} | {rates[0]:,.0f} clips/s | "
              f"{rates[1]:,.0f} clips/s | {rates[0] / rates[1]:.2f} |", flush=True)


def _rate(read, pick: np.ndarray) -> float:
    for i in pick[: len(pick) // 10]:
        read(i)
    start = time.perf_counter()
    for i in pick:
        read(i)
    return len(pick) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=650_000, help="clips in the store (650000)")
    p.add_argument("--frames", type=int, default=4, help="T of each tiny clip (4)")
    p.add_argument("--clips-per-shard", type=int, default=2048,
                   help="frames.clips_per_shard of the sharded layout (2048)")
    p.add_argument("--layouts", nargs="+", default=["shards", "files"],
                   choices=["shards", "files"])
    p.add_argument("--root", type=Path, default=None, help="scratch folder (a temporary one)")
    p.add_argument("--formats", action="store_true",
                   help="only the .npy shard against ArrayRecord, at real clip sizes")
    p.add_argument("--input", action="store_true",
                   help="only training's input (FrameSequence), sharded against per-file")
    args = p.parse_args(argv)
    if args.formats:
        return formats()
    if args.input:
        return input_throughput()
    dvc = subprocess.run(["dvc", "--version"], capture_output=True, text=True).stdout.strip()
    print(f"frame store benchmark: {args.clips} clips of ({args.frames}, 8, 8, 3) uint8, "
          f"{args.clips_per_shard} clips per shard, dvc {dvc}, {os.cpu_count()} cores",
          flush=True)
    base = Path(tempfile.mkdtemp(prefix="frame-store-", dir=args.root))
    try:
        results = []
        for layout in args.layouts:
            results.append(measure(layout, base, args.clips, args.frames,
                                   args.clips_per_shard))
            print(f"  {layout}: done", flush=True)
            shutil.rmtree(base / layout, ignore_errors=True)
            shutil.rmtree(base / f"{layout}-remote", ignore_errors=True)
        ops = ["write", "add", "status", "push", "status changed", "commit"]
        print("\n| layout | files | " + " | ".join(ops) + " | random reads |")
        print("|---|---:|" + "---:|" * len(ops) + "---:|")
        for r in results:
            cells = [f"{r[o][0]:.1f} s ({r[o][1]:.1f})" for o in ops]
            print(f"| {r['layout']} | {r['files']:,} | " + " | ".join(cells)
                  + f" | {r['reads']:,.0f} clips/s |")
        print("\n(wall seconds, CPU seconds in brackets; add = hashing + cache, as dvc commit "
              "of a stage's outputs)")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
