"""Benchmark: does the input pipeline keep the device busy? At the real run's sizes.

For each kind of work the real run does, prints the throughput of the model alone, on
data already in memory in the form the model takes, against the project's own path end
to end (reading the frame or feature store, as the stages do), and their ratio:

- ``train <arch>`` for LRCN and ConvLSTM: one epoch of ``fit`` with params.yaml's
  augmentation (a ``ClipAugmentation`` layer inside the compiled step), on uint8 clips in
  memory, against ``fit`` on training's ``FrameSequence`` (``.npy`` clips read from disk
  by ``train.loader_workers`` threads, Keras ``PyDataset`` workers);
- ``train <arch> head`` for the three backbone architectures: one epoch of the head on
  float32 feature arrays in memory, against training's path: one epoch on its
  ``FeatureSequence`` (batches read from the feature store, shuffled by (seed, epoch),
  which exact resume needs), on the clips whose features were extracted;
- ``extract_features <arch>``: the frozen backbone (random weights: same cost as
  ImageNet's) on frames already at its size, against ``extract_features`` itself: clips
  read as stored (224 px for EfficientNetB7's 600 px) by reading threads, enlarged inside
  the feature model, features written.

Real sizes: T = 20; 64 px for LRCN and ConvLSTM; 224 px for InceptionV3 and VGG16, 600 px
for EfficientNetB7 (served from the 224 px store); synthetic 320x240 clips at 25 fps.
The first line names the device, the Keras backend and the versions; run it once per
backend (``KERAS_BACKEND=jax python benchmarks/input_pipeline.py``). Results go to
docs/benchmarks.md, "Input pipeline". Targets (issue 12): ratio >= 0.9 on 2 CPU cores
for every training path with augmentation and for extract_features; on a GPU >= 0.8 for
LRCN / ConvLSTM training and the heads, >= 0.5 for InceptionV3 / VGG16 extract_features
and >= 0.8 for EfficientNetB7.

    python benchmarks/input_pipeline.py                  # all, CPU-sized clip counts
    python benchmarks/input_pipeline.py --only lrcn convlstm --workers 0 2 4
    python benchmarks/input_pipeline.py --feature-clips efficientnetb7_lstm=40  # on a GPU

Each training figure is the fastest of ``--repeat`` epochs after a warm-up epoch (tracing
excluded); each extraction figure follows a warm-up call. ``--workers`` lists the
``train.loader_workers`` values to compare (Keras starts reading threads from 2 on; below
that, under TensorFlow, its ``tf.data`` prefetch still reads one batch ahead; under JAX
nothing does).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: The real run's image sizes (params.yaml) and sequence length.
SIZES = {"lrcn": 64, "convlstm": 64, "inceptionv3_gru": 224, "efficientnetb7_lstm": 600,
         "vgg16_bilstm": 224}
T = 20
#: Clips whose features are extracted per backbone: a minute or two each on 2 CPU cores
#: (EfficientNetB7 at 600 px: ~0.6 frames/s there).
FEATURE_CLIPS = {"inceptionv3_gru": 16, "vgg16_bilstm": 4, "efficientnetb7_lstm": 2}


def _best_epoch(model, x, y, batch_size, repeat: int) -> float:
    """Seconds of the fastest of ``repeat`` one-epoch ``fit`` calls after a warm-up one."""
    kwargs = {"batch_size": batch_size, "epochs": 1, "verbose": 0, "shuffle": y is not None}
    model.fit(x, y, **kwargs)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        model.fit(x, y, **kwargs)
        times.append(time.perf_counter() - start)
    return min(times)


def _dataset(root: Path, clips_per_group: int, groups: int, sizes: dict[str, int],
             length: int):
    """Synthetic 320x240 clips, 25 fps, 4-10 s (100-250 frames), 5 classes, in a frame
    store at ``sizes``' sizes (real: 64 and 224 px; 600 px served by 224), ``length``
    frames a clip. Returns the store root and classes."""
    from actionrec.config import FrameSettings
    from actionrec.data.frames import extract_frames
    from actionrec.data.splits import build_manifest
    from actionrec.data.synthetic import generate
    from actionrec.data.validation import probe_videos

    acts = ["sit_down", "stand_up", "wave", "jumping_jack", "walk"]
    generate(root, acts, groups, 1, clips_per_group, 100, 250, 320, 240, 25.0, 0,
             progress=False)
    names = sorted(a.title().replace("_", "") for a in acts)
    manifest, classes, _ = build_manifest(root / "ucfTrainTestlist", root / "UCF-101", 1, None,
                                          names, 0.0, 0)
    probed = probe_videos(list(manifest["path"]), root / "UCF-101", 0, progress=False)
    extract_frames(manifest, probed, classes, root / "UCF-101", sorted(set(sizes.values())),
                   FrameSettings(sequence_length=length), root / "frames", 0.0,
                   root / "r.json", progress=False)
    return root / "frames", classes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", type=int, default=4, help="groups per class (1 is test)")
    ap.add_argument("--clips-per-group", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=2, help="timed epochs per figure")
    ap.add_argument("--workers", type=int, nargs="+", default=[2],
                    help="train.loader_workers values to time (default: 2, params.yaml's)")
    ap.add_argument("--only", nargs="+", choices=sorted(SIZES), default=sorted(SIZES),
                    help="architectures to time")
    ap.add_argument("--feature-clips", nargs="+", default=[],
                    help="ARCH=N clips to extract features of (defaults: "
                         + ", ".join(f"{k}={v}" for k, v in FEATURE_CLIPS.items()) + ")")
    ap.add_argument("--size", nargs="+", default=[], metavar="ARCH=PX",
                    help="another image size than the real run's (a smaller check on a CPU)")
    ap.add_argument("--length", type=int, default=T,
                    help="frames per clip, T (default: %(default)s, the real run's)")
    args = ap.parse_args()
    feature_clips = {**FEATURE_CLIPS, **{k: int(v) for k, v in
                                          (s.split("=") for s in args.feature_clips)}}
    sizes = {**SIZES, **{k: int(v) for k, v in (s.split("=") for s in args.size)}}
    t_len = args.length

    import numpy as np

    from actionrec.config import load_params
    from actionrec.data.datasets import FrameSequence, one_hot, split_index
    from actionrec.data.frames import read_clip
    from actionrec.features import extract_features
    from actionrec.models import get_architecture
    from actionrec.models.heads import backbone_feature_model
    from actionrec.runtime import runtime_line
    from actionrec.training import (
        _feature_data,
        build_feature_head,
        compile_model,
        set_determinism,
    )

    shipped = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    rows: list[tuple[str, str, float, float, str]] = []

    def row(work: str, unit: str, alone: float, piped: float, note: str = "") -> None:
        rows.append((work, unit, alone, piped, note))
        print(f"  {work}: model alone {alone:.1f} {unit}, end to end {piped:.1f} {unit}, "
              f"ratio {piped / alone:.2f} {note}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        frames_root, classes = _dataset(root, args.clips_per_group, args.groups,
                                        {a: sizes[a] for a in args.only}, t_len)
        c = len(classes)
        n_train = len(split_index(frames_root / str(sizes[args.only[0]]), "train"))
        print(runtime_line("input_pipeline benchmark"))
        print(f"{n_train} train clips of 320x240 (5 classes), T={t_len}, made in "
              f"{time.perf_counter() - start:.0f} s; best of {args.repeat} epochs", flush=True)

        for name in args.only:
            arch, size = get_architecture(name), sizes[name]
            ps = shipped.models.get(name)
            store = frames_root / str(size)
            train_rows = split_index(store, "train")
            y = one_hot(train_rows["label"].to_numpy(), c)
            if arch.backbone is None:
                s = arch.settings(image_size=size, augment=ps.augment)
                set_determinism(0)
                model = arch.build(s, c, t_len)
                compile_model(model, 1e-3, 0.9, 0.999, c)
                clips = np.stack([read_clip(store, c) for c in train_rows["clip"]])
                alone = len(y) / _best_epoch(model, clips, y, ps.batch_size, args.repeat)
                for w in args.workers:
                    seq = FrameSequence(store, train_rows, c, ps.batch_size, shuffle=True,
                                        workers=w, max_queue_size=max(2 * w, 1))
                    piped = len(y) / _best_epoch(model, seq, None, None, args.repeat)
                    row(f"train {name} (augmentation on)", "clips/s", alone, piped,
                        f"loader_workers {w}")
                continue

            s = arch.settings(image_size=size, backbone={
                "weights": None, "feature_batch_size": ps.backbone.feature_batch_size})
            n = min(feature_clips[name], len(train_rows))
            sub = store.parent / f"{size}-{name}"  # the first n training clips, same shards
            sub.mkdir()
            shutil.copy(store / "meta.json", sub / "meta.json")
            (sub / "shards").symlink_to(store / "shards", target_is_directory=True)
            index = split_index(store, "train").head(n)
            index.to_csv(sub / "index.csv", index=False)
            set_determinism(0)
            extractor = backbone_feature_model(arch.backbone, s)
            # a second build, timed: what extract_features' own build costs (the first one
            # also pays one-time costs, more than a small extraction takes)
            t0 = time.perf_counter()
            backbone_feature_model(arch.backbone, s)
            build = time.perf_counter() - t0
            batch = max(1, s.backbone.feature_batch_size // t_len) * t_len
            frames = np.concatenate([read_clip(store, c) for c in index["clip"]])  # at S
            extractor.predict_on_batch(frames[:batch])  # warm-up (tracing)
            t0 = time.perf_counter()
            for i in range(0, len(frames), batch):
                np.asarray(extractor.predict_on_batch(frames[i:i + batch]))
            alone = len(frames) / (time.perf_counter() - t0)
            del frames
            features = root / "features" / name
            set_determinism(0)
            t0 = time.perf_counter()
            extract_features(name, s, sub, features, progress=False,
                             readers=shipped.train.loader_workers)
            # extract_features builds its model too: that build, timed above, is left out
            # (seconds against the hours of the real run); its first call's tracing is not.
            piped = n * t_len / (time.perf_counter() - t0 - build)
            row(f"extract_features {name} @{size}", "frames/s", alone, piped,
                f"{n} clips; loader_workers {shipped.train.loader_workers}")

            # The head on the clips whose features were extracted: in memory (the model
            # alone) against FeatureSequence, which reads them from the store a batch at a
            # time, as training does
            one = {"shard": (0, 1), "devices": 1}
            data = _feature_data(features, store, c, ps.batch_size, 0, one)
            feats, mask = (np.concatenate(a) for a in zip(*data.train.chunks(), strict=True))
            labels = one_hot(data.train.labels, c)
            set_determinism(0)
            head = build_feature_head(arch, s, c, t_len, data.train)
            compile_model(head, 1e-3, 0.9, 0.999, c)
            epoch = _best_epoch(head, [feats, mask], labels, ps.batch_size, args.repeat)
            piped = _best_epoch(head, data.train, None, None, args.repeat)
            row(f"train {name} head on cached features", "clips/s", len(labels) / epoch,
                len(labels) / piped, f"{len(labels)} clips, read from the feature store")

    print()
    print("| work | unit | model alone | project end to end | ratio | notes |")
    print("|---|---|---:|---:|---:|---|")
    for work, unit, alone, piped, note in rows:
        print(f"| {work} | {unit} | {alone:.1f} | {piped:.1f} | {piped / alone:.2f} | {note} |")


if __name__ == "__main__":
    main()
