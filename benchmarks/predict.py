"""Benchmark: memory and speed of `actionrec predict` on long high-resolution video.

Writes 1080p videos of increasing length (moving shapes, MPEG-4 Part 2 in .mp4, 25
fps), then, each in a fresh process, predicts it with sliding windows and reports
the process's peak RSS against its RSS once the model is loaded, and the decoding +
prediction speed. The target: peak RSS does not grow with the video's length
(frames are shrunk to the model's size as they are decoded; only open windows hold
frames).

    python benchmarks/predict.py                      # 1080p, 4 s and 16 s
    python benchmarks/predict.py --seconds 4 16 32 --window 2 --stride 1

The model is an LRCN at its default input (T = 20, 64 px) with random weights:
memory and speed do not depend on what it learned.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CHILD = r"""
import json, resource, sys, time
import numpy as np
from actionrec.predict import load_predictor, predict_video
model, video, window, stride = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
p = load_predictor(model)
c = p.contract
p.predict_batch(np.zeros((8, c.sequence_length, c.image_size, c.image_size, 3), np.uint8))
loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # model loaded, graph traced
start = time.perf_counter()
r = predict_video(p, video, window_s=window, stride_s=stride)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"ok": r.ok, "windows": len(r.timeline or []), "frames": r.n_frames,
                  "seconds": seconds, "loaded_kib": loaded, "peak_kib": peak}))
"""


def write_video(path: Path, seconds: float, width: int, height: int, fps: float = 25.0) -> None:
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    base = np.zeros((height, width, 3), np.uint8)
    base[:] = (40, 60, 80)
    for i in range(int(seconds * fps)):
        frame = base.copy()
        x = int((i * 17) % (width - 200))
        cv2.rectangle(frame, (x, height // 3), (x + 200, height // 3 + 300), (0, 200, 255), -1)
        cv2.circle(frame, (width - x - 100, height // 2), 120, (255, 80, 0), -1)
        writer.write(frame)
    writer.release()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, nargs="+", default=[4.0, 16.0])
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--window", type=float, default=2.0, help="window, seconds")
    ap.add_argument("--stride", type=float, default=1.0, help="stride, seconds")
    args = ap.parse_args()

    import keras

    from actionrec.io import write_json
    from actionrec.models import get_architecture
    from actionrec.models.settings import LRCNSettings

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        s, t, classes = LRCNSettings(image_size=64), 20, ["a", "b", "c", "d", "e"]
        model_dir = tmp / "lrcn"
        model_dir.mkdir()
        keras.utils.set_random_seed(0)
        get_architecture("lrcn").build(s, len(classes), t).save(model_dir / "model.keras")
        write_json(model_dir / "meta.json", {
            "architecture": "lrcn", "classes": classes, "sequence_length": t,
            "image_size": s.image_size, "sampling": "uniform", "short_clip": "pad",
            "crop": "center"})
        print(f"model: LRCN, T = {t}, {s.image_size} px; windows of {args.window:g} s every "
              f"{args.stride:g} s; video {args.width}x{args.height} mp4v, 25 fps\n")
        print("| video length | frames | windows | seconds | frames/s | RSS model loaded "
              "(MiB) | peak RSS (MiB) | peak - loaded (MiB) |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for seconds in args.seconds:
            video = tmp / f"video_{seconds:g}s.mp4"
            write_video(video, seconds, args.width, args.height)
            out = subprocess.run([sys.executable, "-c", CHILD, str(model_dir), str(video),
                                  str(args.window), str(args.stride)],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            assert r["ok"], out.stderr[-2000:]
            loaded, peak = r["loaded_kib"] / 1024, r["peak_kib"] / 1024
            print(f"| {seconds:g} s | {r['frames']} | {r['windows']} | {r['seconds']:.1f} | "
                  f"{r['frames'] / r['seconds']:.0f} | {loaded:.0f} | {peak:.0f} | "
                  f"{peak - loaded:.0f} |", flush=True)
            video.unlink()


if __name__ == "__main__":
    main()
