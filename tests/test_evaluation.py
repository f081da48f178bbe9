"""Test-split metrics and the comparison (evaluation.py) on inputs small enough to check by
hand: top-k accuracy, macro precision / recall / F1 with a class never predicted, and the
comparison table and chart written from real metrics files."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from actionrec.evaluation import classification_metrics, compare, topk_accuracy

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
    metrics, report = classification_metrics(PROBS, LABELS, CLASSES, top_k=3)
    assert metrics["top1_accuracy"] == 0.5 and metrics["top3_accuracy"] == 1.0
    assert metrics["macro_precision"] == pytest.approx((1 / 3 + 1 + 0) / 3)
    assert metrics["macro_recall"] == pytest.approx((1 + 1 / 2 + 0) / 3)
    assert metrics["macro_f1"] == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)
    assert metrics["n_test"] == 4
    assert report["StandUp"]["support"] == 1 and report["StandUp"]["f1-score"] == 0.0
    assert report["SitDown"]["recall"] == pytest.approx(0.5)


def _metrics(top1: float, f1: float, latency: float) -> dict:
    return {"top1_accuracy": top1, "top3_accuracy": 1.0, "macro_precision": f1,
            "macro_recall": f1, "macro_f1": f1, "parameters": 35220, "latency_ms": latency,
            "epochs_trained": 12, "n_test": 64, "train_top1_accuracy": 1.0}


def test_compare_ranks_by_macro_f1_and_writes_the_table_links_and_chart(tmp_path):
    reports = tmp_path / "evaluate"
    for arch, m in {"lrcn": _metrics(0.9, 0.88, 4.0),
                    "convlstm": _metrics(0.95, 0.94, 8.5)}.items():
        (reports / arch).mkdir(parents=True)
        (reports / arch / "metrics.json").write_text(json.dumps(m))
    links = {"compare": "http://127.0.0.1:5000/#/compare-runs?runs=a",
             "runs": "http://127.0.0.1:5000/#/experiments/1", "ui": "http://127.0.0.1:5000",
             "serve": "mlflow ui"}
    out = tmp_path / "comparison.md"
    got = compare(reports, ["lrcn", "convlstm"], out, links)
    assert set(got) == {"lrcn", "convlstm"}
    table = out.read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert [r.split("|")[1].strip() for r in rows[1:]] == ["convlstm", "lrcn"]
    assert "| convlstm | 0.950 | 1.000 | 0.940 | 0.940 | 0.940 | 35,220 | 8.5 | 12 |" in table
    assert "Best by macro-F1: **convlstm**." in table
    assert f"[These runs side by side]({links['compare']})" in table
    assert "Start it first: `mlflow ui`" in table
    chart = cv2.imread(str(out.with_suffix(".png")))
    assert chart is not None and chart.shape[0] > 100 and chart.shape[1] > 300
