"""Test-split metrics and the comparison (evaluation.py) on inputs small enough to check by
hand: top-k accuracy, macro precision / recall / F1 with a class never predicted, and the
comparison table, champion and chart written from real metrics and prediction files.
(The statistics themselves: test_stats.py.)"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest

from actionrec.evaluation import classification_metrics, compare, interval_metrics, topk_accuracy

CLASSES = ["Bend", "SitDown", "StandUp"]

#: Four clips, three classes. Top-1: clip 0 right (Bend), clip 1 wrong (Bend for SitDown),
#: clip 2 wrong (Bend for StandUp), clip 3 right (SitDown). StandUp is never predicted.
PROBS = np.array([[0.7, 0.2, 0.1],
                  [0.5, 0.4, 0.1],
                  [0.6, 0.3, 0.1],
                  [0.1, 0.8, 0.1]], dtype=np.float32)
LABELS = np.array([0, 1, 2, 1])


def test_topk_accuracy_counts_the_true_label_among_the_k_highest():
    assert topk_accuracy(PROBS, LABELS, 1) == 0.5
    assert topk_accuracy(PROBS, LABELS, 2) == 0.75  # clip 2's StandUp is only third
    assert topk_accuracy(PROBS, LABELS, 3) == 1.0
    assert topk_accuracy(PROBS, LABELS, 5) == 1.0  # k above the class count: all of them


def test_macro_metrics_by_hand_with_a_class_never_predicted():
    """Per class (precision, recall): Bend (1/3, 1), SitDown (1, 1/2), StandUp (0, 0) with
    zero_division=0; F1: 1/2, 2/3, 0. The macro means weigh the classes alike."""
    metrics, report = classification_metrics(PROBS, LABELS, CLASSES, top_k=2)
    assert metrics["top1_accuracy"] == 0.5 and metrics["top2_accuracy"] == 0.75
    assert metrics["macro_precision"] == pytest.approx((1 / 3 + 1 + 0) / 3)
    assert metrics["macro_recall"] == pytest.approx((1 + 1 / 2 + 0) / 3)
    assert metrics["macro_f1"] == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)
    assert metrics["n_test"] == 4
    assert report["StandUp"]["support"] == 1 and report["StandUp"]["f1-score"] == 0.0
    assert report["SitDown"]["recall"] == pytest.approx(0.5)
    # top-3 of 3 classes is right whatever the model: left out
    assert not any(k.startswith("top3") for k in classification_metrics(
        PROBS, LABELS, CLASSES, top_k=3)[0])


def _report(root, arch: str, pred: np.ndarray, labels: np.ndarray, groups: np.ndarray,
            latency: float, parameters: int) -> None:
    """An evaluate@ report: metrics.json (with its intervals) and predictions.csv."""
    metrics, _ = classification_metrics(np.eye(4)[pred], labels, CLASSES4, top_k=3)
    metrics.update(interval_metrics(labels, pred, groups, 4, 0.95, 500, 0),
                   parameters=parameters, latency_ms=latency, epochs_trained=12,
                   train_top1_accuracy=1.0)
    (root / arch).mkdir(parents=True)
    (root / arch / "metrics.json").write_text(json.dumps(metrics))
    table = pd.DataFrame(np.eye(4)[pred], columns=CLASSES4)
    table.insert(0, "video", [f"v_{i}" for i in range(len(labels))])
    table.insert(1, "group", groups)
    table.insert(2, "actual", [CLASSES4[k] for k in labels])
    table.sample(frac=1.0, random_state=1).to_csv(root / arch / "predictions.csv", index=False)


CLASSES4 = ["Bend", "SitDown", "StandUp", "Walk"]


def test_compare_writes_intervals_pairs_the_champion_and_the_chart(tmp_path):
    """Four classes of 6 test groups of 4 clips. convlstm and lrcn are right on every clip,
    vgg16_bilstm wrong on every clip of two groups of each class: the two perfect ones tie
    (the cheaper, lrcn, is champion), and both beat vgg16_bilstm beyond noise. The clips
    are in another order in every file: the pairs are matched by video."""
    labels = np.repeat(np.arange(4), 24)
    groups = np.tile(np.repeat(np.arange(1, 7), 4), 4)
    weak = np.where(groups <= 2, (labels + 1) % 4, labels)
    reports = tmp_path / "evaluate"
    _report(reports, "convlstm", labels, labels, groups, 8.5, 60000)
    _report(reports, "lrcn", labels, labels, groups, 4.0, 35220)
    _report(reports, "vgg16_bilstm", weak, labels, groups, 20.0, 900000)
    links = {"compare": "http://127.0.0.1:5000/#/compare-runs?runs=a",
             "runs": "http://127.0.0.1:5000/#/experiments/1", "ui": "http://127.0.0.1:5000",
             "serve": "mlflow ui"}
    out = tmp_path / "comparison.md"
    result = compare(reports, ["vgg16_bilstm", "lrcn", "convlstm"], out, links, resamples=500)
    assert result.champion.champion == "lrcn" and result.champion.best == "lrcn"
    assert result.champion.tied == ("convlstm", "lrcn")
    table = out.read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert [r.split("|")[1].strip() for r in rows[1:4]] == ["convlstm", "lrcn", "vgg16_bilstm"]
    assert "96 test clips in 24 test groups" in table
    lrcn = json.loads((reports / "lrcn" / "metrics.json").read_text())
    assert f"| 1.000 [{lrcn['top1_accuracy_ci_low']:.3f}, 1.000] |" in table
    assert lrcn["top1_accuracy_ci_low"] < 0.95  # 96 of 96 right, in 24 groups
    assert "## Champion: **lrcn**" in table
    assert "lrcn is the cheapest (4.0 ms per clip, 35,220 parameters)" in table
    assert "| convlstm − lrcn | +0.0 [+0.0, +0.0] | 1.000 |" in table
    assert "lrcn beats vgg16_bilstm by 33.3 points of macro-F1" in table
    assert "the other differences are within noise" in table
    assert f"[These runs side by side]({links['compare']})" in table
    assert "Start it first: `mlflow ui`" in table
    chart = cv2.imread(str(out.with_suffix(".png")))
    assert chart is not None and chart.shape[0] > 100 and chart.shape[1] > 300


def _brightness_model(t: int, size: int):
    """``(N, T, S, S, 3)`` uint8 -> 2-class softmax of the mean brightness: dark clips lean
    to class 0, bright ones to class 1 (fixed weights, no training)."""
    import keras

    frames = keras.Input((t, size, size, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255.0)(frames)
    x = keras.layers.GlobalAveragePooling3D()(x)
    dense = keras.layers.Dense(2, activation="softmax")
    out = dense(x)
    dense.set_weights([np.array([[-4.0, 4.0]] * 3, np.float32), np.array([2.0, -2.0], np.float32)])
    return keras.Model(frames, out)


def test_the_video_level_answer_is_the_mean_of_the_views_probabilities(tmp_path):
    """Two test videos, three views each; the views of video b disagree (view 0 dark, the
    others bright): its video-level probabilities are the mean of the three, and its
    answer flips to class 1. A store of one view gives view 0's probabilities unchanged."""
    from actionrec.data.frames import write_store
    from actionrec.evaluation import video_level_probs

    t, size = 4, 8
    model = _brightness_model(t, size)
    level = {("a", 0): 20, ("a", 1): 30, ("a", 2): 10, ("b", 0): 30, ("b", 1): 250, ("b", 2): 200}
    clip = {key: np.full((t, size, size, 3), v, np.uint8) for key, v in level.items()}
    rows = pd.DataFrame({"video": ["a", "b"], "label": [0, 1], "class_name": ["Dark", "Bright"],
                         "group": [1, 2], "split": "test"})
    single = np.asarray(model.predict(np.stack([clip["a", 0], clip["b", 0]]), verbose=0))
    store = tmp_path / "views" / str(size)
    views_only = [key for key in clip if key[1]]
    index = pd.DataFrame([{"video": video, "class_name": "X", "label": 0, "split": "test",
                           "group": 1, "n_frames": 40, "n_valid": t, "view": view}
                          for video, view in views_only])
    write_store(store, index, np.stack([clip[key] for key in views_only]),
                {"size": size, "files_in": str(size), "stored_size": size, "views": 3},
                clips_per_shard=3)
    probs, views = video_level_probs(model, single, rows, store, batch_size=2)
    each = {key: np.asarray(model.predict(c[None], verbose=0))[0] for key, c in clip.items()}
    expected = [np.mean([each[v, k] for k in range(3)], axis=0) for v in ("a", "b")]
    assert views == 3 and np.allclose(probs, expected, atol=1e-6)
    assert single[1].argmax() == 0 and probs[1].argmax() == 1  # the views outvote view 0
    (store / "meta.json").write_text(json.dumps({"size": size, "views": 1}))
    same, one = video_level_probs(model, single, rows, store, batch_size=2)
    assert one == 1 and same is single
