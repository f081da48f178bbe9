"""Test-split evaluation: metrics, per-class report, confusion matrix, curves, latency.

Metrics (``reports/evaluate/<arch>/metrics.json``; the same keys for every architecture):
``top1_accuracy``, ``top<k>_accuracy``, ``macro_precision``, ``macro_recall``,
``macro_f1`` (scikit-learn, ``zero_division=0``), ``n_test``, ``parameters``,
``latency_ms`` (median wall time of one clip at batch 1 through the whole saved
model, after warm-up), ``epochs_trained``, and ``train_top1_accuracy``: the saved
model's top-1 accuracy on its own training split in inference mode (how well it fits
what it was trained on; the CI gate checks it beside the test metrics, so a model that
can no longer fit its data fails even where the test split happens to hold).

For architectures trained on cached features, test predictions come from the saved
model's own head on the cached test features (the same computation as running the
whole network on frames; a test checks they agree), so a large backbone is not run
again over the test split. Latency always runs the whole network on frames.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from actionrec.io import write_csv, write_json, write_text


def topk_accuracy(probs: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Share of rows whose true label is among the ``k`` highest probabilities."""
    k = min(k, probs.shape[1])
    top = np.argsort(-probs, axis=1)[:, :k]
    return float(np.mean([labels[i] in top[i] for i in range(len(labels))]))


def classification_metrics(probs: np.ndarray, labels: np.ndarray, classes: list[str],
                           top_k: int) -> tuple[dict[str, float], dict[str, Any]]:
    """``(summary metrics, per-class report)`` from ``(N, C)`` probabilities and ``(N,)`` labels."""
    from sklearn.metrics import classification_report, precision_recall_fscore_support

    pred = probs.argmax(axis=1)
    p, r, f, _ = precision_recall_fscore_support(labels, pred, labels=list(range(len(classes))),
                                                 average="macro", zero_division=0)
    # The key names the configured k even when there are fewer classes (then it is 1.0),
    # so that every run has the same metric names.
    metrics = {
        "top1_accuracy": float(np.mean(pred == labels)),
        f"top{top_k}_accuracy": topk_accuracy(probs, labels, top_k),
        "macro_precision": float(p), "macro_recall": float(r), "macro_f1": float(f),
        "n_test": int(len(labels)),
    }
    report = classification_report(labels, pred, labels=list(range(len(classes))),
                                   target_names=classes, output_dict=True, zero_division=0)
    return metrics, report


def plot_confusion(labels: np.ndarray, pred: np.ndarray, classes: list[str], title: str,
                   path: Path) -> None:
    """Confusion matrix PNG (rows = true class), counts and row-normalised colours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    size = max(4.0, 0.6 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(labels, pred, labels=list(range(len(classes))),
                                            display_labels=classes, ax=ax, colorbar=False,
                                            xticks_rotation=45, cmap="Blues")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(history_csv: Path, title: str, path: Path) -> None:
    """Loss and accuracy per epoch (train and validation) PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = pd.read_csv(history_csv)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key in zip(axes, ("loss", "accuracy"), strict=True):
        ax.plot(h["epoch"] + 1, h[key], marker="o", label=f"train {key}")
        if f"val_{key}" in h:
            ax.plot(h["epoch"] + 1, h[f"val_{key}"], marker="o", label=f"val {key}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def measure_latency(model, clip: np.ndarray, warmup: int, runs: int) -> float:
    """Median milliseconds of ``model.predict_on_batch(clip)`` (batch 1; the compiled
    predict function), after ``warmup`` calls (the first one traces the graph)."""
    for _ in range(max(1, warmup)):
        model.predict_on_batch(clip)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        np.asarray(model.predict_on_batch(clip))
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def predict_split(name: str, model, frames: Path, features: Path, batch_size: int,
                  split: str = "test") -> tuple[np.ndarray, pd.DataFrame]:
    """``(probabilities (N, C) float32, rows)`` on ``split``; the head on cached features
    when ``features/<name>/<split>.npy`` exists, the whole model on frames otherwise.
    Inference mode: no dropout, no augmentation, BatchNormalization's moving statistics."""
    from actionrec.data.datasets import FrameSequence, load_features, split_index

    store = features / name
    if (store / f"{split}.npy").exists():
        feats, mask, rows = load_features(store, split)
        head = model.get_layer(f"{name}_head")
        probs = head.predict([feats, mask], batch_size=batch_size, verbose=0)
        return np.asarray(probs), rows
    rows = split_index(frames, split)
    seq = FrameSequence(frames, rows, model.output_shape[-1], batch_size)
    return np.asarray(model.predict(seq, verbose=0)), rows


def evaluate_architecture(name: str, model_dir: Path, frames_root: Path, features_root: Path,
                          report_dir: Path, top_k: int = 3, latency_warmup: int = 2,
                          latency_runs: int = 10, batch_size: int = 8) -> dict[str, Any]:
    """Evaluate ``model_dir/model.keras`` on the test split; write ``report_dir``.

    Writes ``metrics.json``, ``per_class.json``, ``confusion.csv`` (one row per test
    clip: ``actual``, ``predicted`` class names, for ``dvc plots``), ``confusion.png``,
    ``curves.png``, ``predictions.csv``.

    Returns:
        The metrics dict.
    """
    import keras

    import actionrec.models.layers  # noqa: F401  (registers the custom layers)
    from actionrec.data.frames import frames_dir, read_clip
    from actionrec.model_meta import ModelMeta

    meta = ModelMeta.read(model_dir)
    classes = meta.classes
    model = keras.models.load_model(model_dir / "model.keras", safe_mode=True)
    frames = frames_dir(frames_root, meta.image_size)
    probs, rows = predict_split(name, model, frames, features_root, batch_size)
    labels = rows["label"].to_numpy()
    metrics, per_class = classification_metrics(probs, labels, classes, top_k)
    train_probs, train_rows = predict_split(name, model, frames, features_root, batch_size,
                                            "train")
    metrics["train_top1_accuracy"] = float(np.mean(
        train_probs.argmax(axis=1) == train_rows["label"].to_numpy()))
    clip = read_clip(frames, rows["file"].iloc[0])[None]
    metrics["latency_ms"] = measure_latency(model, clip, latency_warmup, latency_runs)
    metrics["parameters"] = int(model.count_params())
    metrics["epochs_trained"] = int(meta.epochs_trained or 0)

    report_dir.mkdir(parents=True, exist_ok=True)
    pred = probs.argmax(axis=1)
    write_json(report_dir / "metrics.json", metrics)
    write_json(report_dir / "per_class.json", per_class)
    write_csv(report_dir / "confusion.csv", pd.DataFrame({
        "actual": [classes[i] for i in labels], "predicted": [classes[i] for i in pred]}))
    predictions = pd.DataFrame(probs, columns=classes)
    predictions.insert(0, "video", rows["video"].to_numpy())
    predictions.insert(1, "actual", [classes[i] for i in labels])
    write_csv(report_dir / "predictions.csv", predictions)
    plot_confusion(labels, pred, classes, f"{name}: test confusion matrix",
                   report_dir / "confusion.png")
    plot_curves(model_dir / "history.csv", f"{name}: training curves", report_dir / "curves.png")
    return metrics


def render_comparison(metrics: dict[str, dict[str, Any]],
                      links: dict[str, str] | None = None) -> str:
    """Markdown table, one row per architecture, best macro-F1 first; with ``links``
    (:func:`actionrec.tracking.links.comparison_links`), where to see the runs in MLflow."""
    order = sorted(metrics, key=lambda a: -metrics[a]["macro_f1"])
    topk = next((k for k in next(iter(metrics.values())) if k.startswith("top")
                 and k != "top1_accuracy"), None)
    lines = ["# Architecture comparison (test split)", "",
             f"| architecture | top-1 accuracy | {topk or 'top-k'} | macro precision | "
             "macro recall | macro-F1 | parameters | latency (ms/clip) | epochs |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for a in order:
        m = metrics[a]
        lines.append(
            f"| {a} | {m['top1_accuracy']:.3f} | {m.get(topk, float('nan')):.3f} | "
            f"{m['macro_precision']:.3f} | {m['macro_recall']:.3f} | {m['macro_f1']:.3f} | "
            f"{m['parameters']:,} | {m['latency_ms']:.1f} | {m['epochs_trained']} |")
    lines += ["", f"Best by macro-F1: **{order[0]}**."]
    if links:
        lines += ["", "## In MLflow", "",
                  f"- [These runs side by side]({links['compare']}) (MLflow's compare view: "
                  "parameters, metrics, parallel coordinates)",
                  f"- [The experiment's training runs]({links['runs']})",
                  "", f"The links open the MLflow UI at {links['ui']}."]
        if "serve" in links:
            lines[-1] += f" Start it first: `{links['serve']}`"
    return "\n".join(lines) + "\n"


def plot_comparison(metrics: dict[str, dict[str, Any]], path: Path) -> None:
    """Grouped bars of top-1 accuracy and macro-F1, latency on a second panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    archs = list(metrics)
    x = np.arange(len(archs))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [2, 1]})
    ax.bar(x - 0.2, [metrics[a]["top1_accuracy"] for a in archs], 0.4, label="top-1 accuracy")
    ax.bar(x + 0.2, [metrics[a]["macro_f1"] for a in archs], 0.4, label="macro-F1")
    ax.set_xticks(x, archs, rotation=20)
    ax.set_ylim(0, 1)
    ax.set_title("test split")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    ax2.barh(archs, [metrics[a]["latency_ms"] for a in archs], color="gray")
    ax2.set_xlabel("latency, ms per clip (batch 1)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def compare(report_root: Path, archs: list[str], out: Path,
            links: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Read ``<report_root>/<arch>/metrics.json`` of ``archs``; write the comparison table
    ``out`` (Markdown, with the MLflow ``links`` if any) and the chart beside it (``.png``)."""
    metrics = {a: json.loads((report_root / a / "metrics.json").read_text()) for a in archs}
    write_text(out, render_comparison(metrics, links))
    plot_comparison(metrics, out.with_suffix(".png"))
    return metrics
