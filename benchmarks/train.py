"""Benchmark: training throughput of the five architectures on the project's input pipeline.

Prints, per architecture, clips/s of one training epoch fed by the project's input
pipeline (LRCN, ConvLSTM: ``FrameSequence`` streaming ``.npy`` clips from disk; the
backbone architectures: their head on the cached feature store) against the same
model on the same data already in memory as NumPy arrays (target: overhead <= 10 %);
for LRCN and ConvLSTM also the pipeline with params.yaml's training augmentation
(``models.<arch>.augment``: flip, shift, zoom; a ``ClipAugmentation`` layer inside the
model's compiled training step), which is extra work, not overhead;
and, for the backbone architectures, the epoch time of the head on cached features
against the whole network that runs the frozen backbone on every frame of every
epoch (what ``extract_features`` saves).

    python benchmarks/train.py                       # synthetic clips, small sizes
    python benchmarks/train.py --clips-per-group 4 --length 20

Each figure is the fastest of ``--repeat`` epochs after one warm-up epoch (graph
tracing excluded). Image sizes default to CPU-friendly values (``--sizes``); the
ratios, not the absolute speeds, are what the targets are about.

For the backbone architectures the "project pipeline" column is the standardisation
statistics streamed over the feature store (as training does once) plus one epoch of
``FeatureSequence`` batches read from it, i.e. the statistics charged to every epoch: a
worst case; the in-memory column is the epoch alone, on float32 arrays.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _epoch_seconds(model, x, y, batch_size, repeat):
    shuffle = y is not None  # as training: a FrameSequence shuffles itself
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, shuffle=shuffle)  # tracing
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, shuffle=shuffle)
        times.append(time.perf_counter() - start)
    return min(times)


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--groups", type=int, default=4)
    ap.add_argument("--clips-per-group", type=int, default=2)
    ap.add_argument("--length", type=int, default=20, help="sequence length T")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--sizes", nargs="+", default=["lrcn=64", "convlstm=64",
                    "inceptionv3_gru=75", "efficientnetb7_lstm=64", "vgg16_bilstm=64"],
                    help="ARCH=PIXELS image size per architecture")
    args = ap.parse_args()
    sizes = {k: int(v) for k, v in (s.split("=") for s in args.sizes)}

    import keras
    import numpy as np

    from actionrec.config import FrameSettings, load_params
    from actionrec.data.datasets import FrameSequence, one_hot, split_index
    from actionrec.data.frames import extract_frames, read_clip
    from actionrec.data.splits import build_manifest
    from actionrec.data.synthetic import generate
    from actionrec.data.validation import probe_videos
    from actionrec.features import extract_features
    from actionrec.models import get_architecture
    from actionrec.models.heads import streamed_feature_stats
    from actionrec.training import (
        _feature_data,
        build_feature_head,
        compile_model,
        set_determinism,
    )

    acts = ["sit_down", "stand_up", "wave", "jumping_jack", "walk"]
    shipped = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(root, acts, args.groups, 1, args.clips_per_group, 40, 60, 160, 120, 25.0, 0,
                 progress=False)
        manifest, classes, _ = build_manifest(root / "ucfTrainTestlist", root / "UCF-101", 1,
                                              None, sorted(a.title().replace("_", "") for a in
                                                           acts), 0.0, 0)
        probed = probe_videos(list(manifest["path"]), root / "UCF-101", 0, progress=False)
        extract_frames(manifest, probed, classes, root / "UCF-101", sorted(set(sizes.values())),
                       FrameSettings(sequence_length=args.length), root / "frames", 0.0,
                       root / "r.json", progress=False)
        n_classes, t, bs = len(classes), args.length, args.batch_size
        print(f"train benchmark: {len(manifest[manifest.split == 'train'])} train clips, "
              f"T={t}, batch {bs}, keras {keras.__version__} ({keras.backend.backend()}), "
              f"best of {args.repeat} epochs")
        for name, size in sizes.items():
            arch = get_architecture(name)
            store = root / "frames" / str(size)
            train_rows = split_index(store, "train")
            y = one_hot(train_rows["label"].to_numpy(), n_classes)
            frames = np.stack([read_clip(store, c) for c in train_rows["clip"]])
            if arch.backbone is None:
                s = arch.settings(image_size=size)
                set_determinism(0)
                model = arch.build(s, n_classes, t)
                compile_model(model, 1e-3, 0.9, 0.999, n_classes)
                seq = FrameSequence(store, train_rows, n_classes, bs, shuffle=True)
                piped = _epoch_seconds(model, seq, None, None, args.repeat)
                memory = _epoch_seconds(model, frames, y, bs, args.repeat)
                # The same model with params.yaml's augmentation: a ClipAugmentation layer
                # at its input, run inside the compiled training step.
                set_determinism(0)
                with_aug = arch.build(arch.settings(image_size=size,
                                                    augment=shipped.models.get(name).augment),
                                      n_classes, t)
                compile_model(with_aug, 1e-3, 0.9, 0.999, n_classes)
                augmented = _epoch_seconds(with_aug, seq, None, None, args.repeat)
                rows.append((name, len(y) / piped, len(y) / memory, piped / memory - 1, None,
                             len(y) / augmented))
                continue
            s = arch.settings(image_size=size, backbone={"weights": None})
            extract_features(name, s, store, root / "features" / name, progress=False)
            # The project's input pipeline for a head is training's own: FeatureSequence
            # batches read from the feature store (shuffled by (seed, epoch)), after the
            # standardisation statistics streamed over it (counted here as if repeated
            # every epoch: the worst case, a one-epoch training); the in-memory column
            # fits on the same features already in float32 arrays.
            cached = root / "features" / name
            batches = _feature_data(cached, store, n_classes, bs, 0,
                                    {"shard": (0, 1), "devices": 1}).train
            preload = [np.concatenate(a) for a in zip(*batches.chunks(), strict=True)]
            set_determinism(0)
            stats_s = min(_timed(lambda b=batches: streamed_feature_stats(b.chunks))
                          for _ in range(args.repeat))
            set_determinism(0)
            head = build_feature_head(arch, s, n_classes, t, batches)
            compile_model(head, 1e-3, 0.9, 0.999, n_classes)
            memory = _epoch_seconds(head, preload, y, bs, args.repeat)
            piped = stats_s + _epoch_seconds(head, batches, None, None, args.repeat)
            full = arch.build(s, n_classes, t, head=head)
            compile_model(full, 1e-3, 0.9, 0.999, n_classes)
            every_epoch = _epoch_seconds(full, frames, y, bs, 1)
            rows.append((name, len(y) / piped, len(y) / memory, piped / memory - 1,
                         every_epoch / piped, None))
    print()
    print("| architecture | size | clips/s, project pipeline | clips/s, in-memory arrays | "
          "overhead | clips/s, pipeline + augmentation | "
          "cached features vs backbone every epoch |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, piped, memory, overhead, speedup, augmented in rows:
        sp = f"{speedup:.0f}x faster" if speedup else "n/a (trains on frames)"
        aug = f"{augmented:.1f}" if augmented else "n/a (cached features)"
        print(f"| {name} | {sizes[name]} | {piped:.1f} | {memory:.1f} | {overhead:+.1%} | {aug} "
              f"| {sp} |")


if __name__ == "__main__":
    main()
