"""Test-split evaluation: metrics, per-class report, confusion matrix, curves, latency.

Metrics (``reports/evaluate/<arch>/metrics.json``; the same keys for every architecture):
``top1_accuracy``, ``top<k>_accuracy`` (only where k is below the number of classes: else
it is 1 whatever the model), ``macro_precision``, ``macro_recall``,
``macro_f1`` (scikit-learn, ``zero_division=0``); ``top1_accuracy_ci_low`` / ``_ci_high``
and ``macro_f1_ci_low`` / ``_ci_high``, their interval over the test groups, with the
groups' ``design_effect`` and ``n_test_groups`` (:func:`actionrec.stats.metric_intervals`);
``n_test``, ``parameters``,
``latency_ms`` (median wall time of one clip at batch 1 through the whole saved
model, after warm-up), ``epochs_trained``, and ``train_top1_accuracy``: the saved
model's top-1 accuracy on its own training split in inference mode (how well it fits
what it was trained on; the CI gate checks it beside the test metrics, so a model that
can no longer fit its data fails even where the test split happens to hold).

Video level (``evaluate.views`` = V, :func:`video_level_probs`): each test video's class
probabilities averaged over V temporal views (:func:`actionrec.data.video.view_indices`;
view 0 is the single view above, the others come from ``data/views``):
``video_top1_accuracy`` and ``video_macro_f1`` with their ``_ci_low`` / ``_ci_high``, and
``views``. With V = 1 they equal the single-view figures exactly.

For architectures trained on cached features, test predictions come from the saved
model's own head on the cached test features (the same computation as running the
whole network on frames; a test checks they agree), so a large backbone is not run
again over the test split. Latency always runs the whole network on frames.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
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
    """``(summary metrics, per-class report)`` from ``(N, C)`` probabilities and ``(N,)``
    labels. ``top<top_k>_accuracy`` is left out where ``top_k`` is at least the number of
    classes (it would be 1.0 for any model)."""
    from sklearn.metrics import classification_report, precision_recall_fscore_support

    pred = probs.argmax(axis=1)
    p, r, f, _ = precision_recall_fscore_support(labels, pred, labels=list(range(len(classes))),
                                                 average="macro", zero_division=0)
    metrics = {
        "top1_accuracy": float(np.mean(pred == labels)),
        **({f"top{top_k}_accuracy": topk_accuracy(probs, labels, top_k)}
           if top_k < len(classes) else {}),
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
    when ``features/<name>`` is a feature store, the whole model on frames otherwise.
    Inference mode: no dropout, no augmentation, BatchNormalization's moving statistics."""
    from actionrec.data.datasets import FeatureSequence, FeatureStore, FrameSequence, split_index
    from actionrec.data.frames import open_store

    store = features / name
    if (store / "index.csv").exists():
        rows = open_store(store, FeatureStore).split(split)
        head = model.get_layer(f"{name}_head")
        seq = FeatureSequence(store, rows, model.output_shape[-1], batch_size)
        return np.asarray(head.predict(seq, verbose=0)), rows
    rows = split_index(frames, split)
    seq = FrameSequence(frames, rows, model.output_shape[-1], batch_size)
    return np.asarray(model.predict(seq, verbose=0)), rows


def video_level_probs(model, single: np.ndarray, rows: pd.DataFrame,
                      views_store: Path | None, batch_size: int) -> tuple[np.ndarray, int]:
    """Each test video's class probabilities averaged over its temporal views.

    Args:
        single: ``(N, C)`` float32, view 0's probabilities of the test ``rows`` (the
            single-view figures' own, :func:`predict_split`).
        views_store: ``data/views/<size>`` (:func:`actionrec.data.frames.extract_views`):
            views ``1 .. V-1`` of the same videos, run through the whole model on frames.
            ``None``, or a store of one view: the single view is the answer.

    Returns:
        ``(probabilities (N, C) float32, V)``: the mean over the views a video has (a
        view that could not be decoded is left out of its mean), in ``rows``' order; with
        one view, ``single`` itself.
    """
    from actionrec.data.frames import read_clip

    if views_store is None or not (views_store / "meta.json").exists():
        return single, 1
    meta = json.loads((views_store / "meta.json").read_text())
    views = int(meta.get("views", 1))
    index = pd.read_csv(views_store / "index.csv")
    if views == 1 or index.empty:
        return single, 1
    position = {video: i for i, video in enumerate(rows["video"])}
    index = index[index["video"].isin(position)].reset_index(drop=True)
    # one clip per call, as measure_latency calls it: the whole network is traced once
    # for both (a batch of another size would trace it again: EfficientNetB7, ~10 s)
    probs = np.concatenate([np.asarray(model.predict_on_batch(
        read_clip(views_store, c)[None])) for c in index["clip"]])
    total, count = single.astype(np.float64), np.ones(len(rows))
    at = index["video"].map(position).to_numpy()
    np.add.at(total, at, probs)
    np.add.at(count, at, 1)
    return (total / count[:, None]).astype(np.float32), views


def interval_metrics(labels: np.ndarray, pred: np.ndarray, groups: np.ndarray,
                     num_classes: int, level: float, resamples: int,
                     seed: int) -> dict[str, float]:
    """``metrics.json``'s interval keys (see the module's docstring) from ``(N,)`` int
    labels, predictions and test groups (:func:`actionrec.stats.metric_intervals`)."""
    from actionrec.stats import METRICS, metric_intervals

    iv = metric_intervals(labels, pred, groups, num_classes, level, resamples, seed)
    out = {f"{k}_ci_{end}": float(getattr(iv[k], end)) for k in METRICS
           for end in ("low", "high")}
    return {**out, "design_effect": float(iv["design_effect"]),
            "n_test_groups": int(iv["n_groups"])}


def evaluate_architecture(name: str, model_dir: Path, frames_root: Path, features_root: Path,
                          report_dir: Path, top_k: int = 3, latency_warmup: int = 2,
                          latency_runs: int = 10, batch_size: int = 8,
                          interval_level: float = 0.95, resamples: int = 2000,
                          seed: int = 0, views_root: Path | None = None) -> dict[str, Any]:
    """Evaluate ``model_dir/model.keras`` on the test split; write ``report_dir``.

    Writes ``metrics.json``, ``per_class.json``, ``confusion.csv`` (one row per test
    clip: ``actual``, ``predicted`` class names, for ``dvc plots``), ``confusion.png``,
    ``curves.png``, ``predictions.csv`` (``video``, ``group``, ``actual``, one column of
    probabilities per class: what ``compare`` pairs the architectures on).
    ``interval_level``, ``resamples``, ``seed``: the intervals' (:func:`interval_metrics`).
    ``views_root``: ``data/views`` (the video-level figures, :func:`video_level_probs`).

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
    groups = rows["group"].to_numpy()
    metrics.update(interval_metrics(labels, probs.argmax(axis=1), groups, len(classes),
                                    interval_level, resamples, seed))
    video_probs, views = video_level_probs(
        model, probs, rows, frames_dir(views_root, meta.image_size) if views_root else None,
        batch_size)
    video, _ = classification_metrics(video_probs, labels, classes, top_k)
    video.update(interval_metrics(labels, video_probs.argmax(axis=1), groups, len(classes),
                                  interval_level, resamples, seed))
    metrics.update({f"video_{k}": video[k] for k in (
        "top1_accuracy", "top1_accuracy_ci_low", "top1_accuracy_ci_high",
        "macro_f1", "macro_f1_ci_low", "macro_f1_ci_high")})
    metrics["views"] = views
    train_probs, train_rows = predict_split(name, model, frames, features_root, batch_size,
                                            "train")
    metrics["train_top1_accuracy"] = float(np.mean(
        train_probs.argmax(axis=1) == train_rows["label"].to_numpy()))
    clip = read_clip(frames, rows["clip"].iloc[0])[None]
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
    predictions.insert(1, "group", rows["group"].to_numpy())
    predictions.insert(2, "actual", [classes[i] for i in labels])
    write_csv(report_dir / "predictions.csv", predictions)
    plot_confusion(labels, pred, classes, f"{name}: test confusion matrix",
                   report_dir / "confusion.png")
    plot_curves(model_dir / "history.csv", f"{name}: training curves", report_dir / "curves.png")
    return metrics


@dataclass(frozen=True)
class Comparison:
    """What ``compare`` found: each architecture's ``metrics.json``, every paired difference
    (:func:`actionrec.stats.paired_differences`) and the champion by the rule."""

    metrics: dict[str, dict[str, Any]]
    differences: list[Any]  # actionrec.stats.Difference
    champion: Any  # actionrec.stats.Champion
    n_test: int
    n_groups: int
    level: float
    resamples: int


def load_predictions(report_root: Path, archs: list[str]
                     ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], int]:
    """``(labels (N,), groups (N,), {arch: predictions (N,)}, number of classes)`` from
    every ``<report_root>/<arch>/predictions.csv``, the clips in the first one's order.

    Raises:
        ActionrecError: a file lacks the ``group`` column (written by an older version:
            rerun ``evaluate@<arch>``), or the architectures were tested on other clips.
    """
    from actionrec.errors import ActionrecError

    first = None
    preds = {}
    for arch in archs:
        path = report_root / arch / "predictions.csv"
        table = pd.read_csv(path)
        if "group" not in table:
            raise ActionrecError(f"{path} has no 'group' column (an older evaluate wrote it): "
                                 f"run `dvc repro evaluate@{arch}`")
        classes = [c for c in table.columns if c not in ("video", "group", "actual")]
        table = table.set_index("video")
        if first is None:
            first, names = table, classes
        elif set(table.index) != set(first.index) or classes != names:
            raise ActionrecError(f"{path} holds other test clips or classes than "
                                 f"{report_root / archs[0] / 'predictions.csv'}: rerun every "
                                 "evaluate@ stage on the same data (`dvc repro`)")
        preds[arch] = table.loc[first.index, names].to_numpy().argmax(axis=1)
    index = {c: i for i, c in enumerate(names)}
    labels = first["actual"].map(index).to_numpy()
    return labels, first["group"].to_numpy(), preds, len(names)


def _ci(m: dict[str, Any], key: str) -> str:
    low, high = m.get(f"{key}_ci_low"), m.get(f"{key}_ci_high")
    interval = "" if low is None else f" [{low:.3f}, {high:.3f}]"
    return f"{m[key]:.3f}{interval}"


def _points(d: Any) -> str:
    return f"{100 * d.difference:+.1f} [{100 * d.low:+.1f}, {100 * d.high:+.1f}]"


def render_comparison(result: Comparison, links: dict[str, str] | None = None,
                      alpha: float = 0.05) -> str:
    """Markdown: one row per architecture with its intervals (the champion's metric, best
    first), the champion and why, every pair's differences with Holm-adjusted p-values,
    and a sentence of what is real; with ``links``
    (:func:`actionrec.tracking.links.comparison_links`), where to see the runs in MLflow."""
    metrics, ch = result.metrics, result.champion
    order = sorted(metrics, key=lambda a: (-metrics[a][ch.metric], a))
    topk = next((k for k in next(iter(metrics.values())) if k.startswith("top")
                 and k.endswith("_accuracy") and k != "top1_accuracy"), None)
    level = f"{100 * result.level:g} %"
    # the video-level column (evaluate.views), where every report has it
    views = min((m.get("views", 0) for m in metrics.values()), default=0) \
        if all("video_top1_accuracy" in m for m in metrics.values()) else 0
    lines = ["# Architecture comparison (test split)", "",
             f"{result.n_test} test clips in {result.n_groups} test groups. Intervals: {level}, "
             f"over the test groups ({result.resamples:,} group-bootstrap resamples; top-1 "
             "accuracy: Wilson at the groups' effective sample size; see `actionrec/stats.py`).",
             "",
             f"| architecture | top-1 accuracy [{level}] | macro-F1 [{level}] | "
             + (f"video top-1, {views} views [{level}] | " if views else "")
             + (f"top-{topk[3:].replace('_accuracy', '')} accuracy | " if topk else "")
             + "macro precision | macro recall | parameters | latency (ms/clip) | epochs |",
             "|---|---:|---:|" + ("---:|" if views else "") + ("---:|" if topk else "")
             + "---:|---:|---:|---:|---:|"]
    for a in order:
        m = metrics[a]
        lines.append(
            f"| {a} | {_ci(m, 'top1_accuracy')} | {_ci(m, 'macro_f1')} | "
            + (f"{_ci(m, 'video_top1_accuracy')} | " if views else "")
            + (f"{m[topk]:.3f} | " if topk else "")
            + f"{m['macro_precision']:.3f} | {m['macro_recall']:.3f} | "
            f"{m['parameters']:,} | {m['latency_ms']:.1f} | {m['epochs_trained']} |")
    lines += ["", f"## Champion: **{ch.champion}**", "", ch.reason + ".",
              "(Rule: `compare` in params.yaml; MLflow alias `champion`.)", ""]
    lines += ["## Paired differences", "",
              "Each pair on the same test clips, first minus second, in points of 100, with "
              f"the {level} interval of the paired group bootstrap and the p-value adjusted "
              "for the number of pairs (Holm).", "",
              "| pair | top-1 difference | p (Holm) | macro-F1 difference | p (Holm) |",
              "|---|---:|---:|---:|---:|"]
    by_pair: dict[tuple[str, str], dict[str, Any]] = {}
    for d in result.differences:
        by_pair.setdefault((d.a, d.b), {})[d.metric] = d
    for (a, b), ds in by_pair.items():
        t, f = ds["top1_accuracy"], ds["macro_f1"]
        lines.append(f"| {a} − {b} | {_points(t)} | {t.p_holm:.3f} | {_points(f)} | "
                     f"{f.p_holm:.3f} |")
    lines += ["", _in_words(result, alpha)]
    if links:
        lines += ["", "## In MLflow", "",
                  f"- [These runs side by side]({links['compare']}) (MLflow's compare view: "
                  "parameters, metrics, parallel coordinates)",
                  f"- [The experiment's training runs]({links['runs']})",
                  "", f"The links open the MLflow UI at {links['ui']}."]
        if "serve" in links:
            lines[-1] += f" Start it first: `{links['serve']}`"
    return "\n".join(lines) + "\n"


def _in_words(result: Comparison, alpha: float) -> str:
    """One sentence: the differences by the champion's metric that are beyond noise."""
    metric = result.champion.metric
    label = {"macro_f1": "macro-F1", "top1_accuracy": "top-1 accuracy"}[metric]
    real = []
    for d in result.differences:
        if d.metric == metric and d.p_holm < alpha:
            win, lose, lo, hi = ((d.a, d.b, d.low, d.high) if d.difference > 0 else
                                 (d.b, d.a, -d.high, -d.low))
            real.append(f"{win} beats {lose} by {100 * abs(d.difference):.1f} points of "
                        f"{label} [{100 * lo:.1f}, {100 * hi:.1f}]")
    n_pairs = sum(d.metric == metric for d in result.differences)
    if not real:
        return (f"In words: no difference in {label} between these architectures is beyond "
                f"noise (Holm, alpha {alpha:g}, {n_pairs} pairs).")
    rest = ("; the other differences are within noise" if len(real) < n_pairs else "")
    return f"In words: {'; '.join(real)}{rest} (Holm, alpha {alpha:g})."


def _bounds(metrics: dict[str, dict[str, Any]], archs: list[str], key: str
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(estimates, interval lows, interval highs)`` of ``key`` for ``archs``; an
    architecture without an interval gets its estimate as both bounds."""
    est = np.array([metrics[a][key] for a in archs])
    low = np.array([metrics[a].get(f"{key}_ci_low", metrics[a][key]) for a in archs])
    high = np.array([metrics[a].get(f"{key}_ci_high", metrics[a][key]) for a in archs])
    return est, low, high


def plot_comparison(result: Comparison, path: Path) -> None:
    """Two panels: each architecture's top-1 accuracy and macro-F1 with their intervals as
    error bars (on an axis fitted to them, so that differences of a few points show); and
    the champion's metric against latency (ms per clip, log scale) with the Pareto front
    (no other architecture both faster and better) and the champion marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    metrics, ch = result.metrics, result.champion
    archs = sorted(metrics, key=lambda a: (-metrics[a][ch.metric], a))
    x = np.arange(len(archs))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    lows = []
    for offset, key, label in ((-0.12, "top1_accuracy", "top-1 accuracy"),
                               (0.12, "macro_f1", "macro-F1")):
        est, low, high = _bounds(metrics, archs, key)
        lows.append(low.min())
        ax.errorbar(x + offset, est, yerr=[est - low, high - est], fmt="o", capsize=4,
                    label=f"{label}, {100 * result.level:g} % interval")
    ax.set_xticks(x, archs, rotation=15)
    ax.set_ylim(max(0.0, min(lows) - 0.03), 1.01)
    ax.set_title(f"test split: {result.n_test} clips in {result.n_groups} groups")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)

    lat = np.array([metrics[a]["latency_ms"] for a in archs])
    score, low, high = _bounds(metrics, archs, ch.metric)
    ax2.errorbar(lat, score, yerr=[score - low, high - score], fmt="o", color="gray",
                 capsize=3)
    front_x, front_y, best = [], [], -np.inf
    for i in np.argsort(lat, kind="stable"):
        if score[i] > best:
            front_x.append(lat[i])
            front_y.append(score[i])
            best = score[i]
    # the front's last step runs on to the right edge: slower and no better is dominated
    ax2.step([*front_x, lat.max() * 1.5], [*front_y, front_y[-1]], where="post",
             color="tab:green", label="Pareto front (none both faster and better)")
    k = archs.index(ch.champion)
    ax2.plot(lat[k], score[k], marker="*", markersize=16, color="tab:red", linestyle="none",
             label=f"champion: {ch.champion}")
    for i, a in enumerate(archs):
        ax2.annotate(a, (lat[i], score[i]), textcoords="offset points", xytext=(5, 5),
                     fontsize=8)
    ax2.set_xscale("log")
    ax2.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax2.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax2.set_xlim(lat.min() / 1.5, lat.max() * 1.5)
    ax2.set_xlabel("latency, ms per clip (batch 1, log scale)")
    ax2.set_ylabel({"macro_f1": "macro-F1", "top1_accuracy": "top-1 accuracy"}[ch.metric])
    ax2.grid(alpha=0.3)
    ax2.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def compare(report_root: Path, archs: list[str], out: Path,
            links: dict[str, str] | None = None, level: float = 0.95,
            resamples: int = 2000, seed: int = 0, metric: str = "macro_f1",
            alpha: float = 0.05, cost: tuple[str, ...] = ("latency_ms", "parameters")
            ) -> Comparison:
    """Read ``<report_root>/<arch>/metrics.json`` and ``predictions.csv`` of ``archs``;
    compare every pair on the same test clips (:func:`actionrec.stats.paired_differences`),
    choose the champion by the rule (``metric``, ``alpha``, ``cost``:
    :func:`actionrec.stats.choose_champion`), and write the table ``out`` (Markdown, with
    the MLflow ``links`` if any) and the chart beside it (``.png``).

    Raises:
        ActionrecError: see :func:`load_predictions`.
    """
    from actionrec.stats import choose_champion, cluster_ids, paired_differences

    metrics = {a: json.loads((report_root / a / "metrics.json").read_text()) for a in archs}
    labels, groups, preds, num_classes = load_predictions(report_root, archs)
    differences = paired_differences(labels, groups, preds, num_classes, level, resamples,
                                     seed)
    champion = choose_champion(metrics, differences, metric, alpha, cost)
    result = Comparison(metrics, differences, champion, len(labels),
                        int(cluster_ids(labels, groups).max()) + 1, level, resamples)
    write_text(out, render_comparison(result, links, alpha))
    plot_comparison(result, out.with_suffix(".png"))
    return result
