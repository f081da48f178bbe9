"""The comparison's statistics (stats.py) on constructed predictions whose answers are known:
intervals over test groups that stay honest at 100 %, paired differences and their Holm-
adjusted p-values, and a champion rule that does not depend on row order."""

from __future__ import annotations

import numpy as np
import pytest

from actionrec import stats

#: 4 classes, 8 test groups per class, 4 clips per group: 128 clips.
LABELS = np.repeat(np.arange(4), 32)
GROUPS = np.tile(np.repeat(np.arange(1, 9), 4), 4)


def _with_errors(share: float, seed: int) -> np.ndarray:
    """Predictions wrong on a random ``share`` of the clips (the next class)."""
    wrong = np.random.default_rng(seed).random(len(LABELS)) < share
    return np.where(wrong, (LABELS + 1) % 4, LABELS)


def test_64_of_64_right_is_not_certainty():
    """8 groups of 8 clips, every clip right: a percentile bootstrap would say [1, 1]; the
    interval's lower bound stays below 0.95 (independent clips alone allow about 0.94),
    and fewer groups allow less."""
    labels, groups = np.repeat(np.arange(4), 16), np.tile(np.repeat([1, 2], 8), 4)
    got = stats.metric_intervals(labels, labels, groups, 4)
    for key in stats.METRICS:
        assert got[key].estimate == 1.0 and got[key].high == 1.0 and got[key].low < 0.95
    assert got["design_effect"] == 8.0 and got["n_groups"] == 8  # each group one look
    one_group = stats.metric_intervals(labels, labels, np.ones(64, int), 4)
    assert one_group["top1_accuracy"].low < got["top1_accuracy"].low


def test_an_interval_holds_its_estimate_and_widens_with_half_the_groups():
    pred = _with_errors(0.2, 0)
    whole = stats.metric_intervals(LABELS, pred, GROUPS, 4, seed=1)
    half = GROUPS <= 4
    part = stats.metric_intervals(LABELS[half], pred[half], GROUPS[half], 4, seed=1)
    for key in stats.METRICS:
        for iv in (whole[key], part[key]):
            assert iv.low <= iv.estimate <= iv.high
        assert part[key].high - part[key].low > whole[key].high - whole[key].low
    again = stats.metric_intervals(LABELS, pred, GROUPS, 4, seed=1)
    assert again == whole  # seeded: a rerun gives the same numbers


def test_correlated_groups_give_a_wider_interval_than_clips_would():
    """Errors that come whole groups at a time (an actor the model never gets): the group
    bootstrap's interval is wider than the one treating every clip as its own group."""
    pred = np.where(np.isin(GROUPS, [1, 5]), (LABELS + 1) % 4, LABELS)
    grouped = stats.metric_intervals(LABELS, pred, GROUPS, 4)
    clips = stats.metric_intervals(LABELS, pred, np.arange(len(LABELS)), 4)
    assert grouped["design_effect"] > 2
    for key in stats.METRICS:
        assert (grouped[key].high - grouped[key].low) > 1.5 * (clips[key].high - clips[key].low)


def test_identical_predictions_differ_by_nothing_and_opposite_ones_significantly():
    pred = _with_errors(0.3, 2)
    same = stats.paired_differences(LABELS, GROUPS, {"a": pred, "b": pred.copy()}, 4)
    assert [(d.difference, d.low, d.high, d.p, d.p_holm) for d in same] == [(0, 0, 0, 1, 1)] * 2
    # b is wrong exactly where a is right, and right where a is wrong
    opposite = np.where(pred == LABELS, (LABELS + 1) % 4, LABELS)
    diff = stats.paired_differences(LABELS, GROUPS, {"a": pred, "b": opposite, "c": pred}, 4)
    ab = next(d for d in diff if (d.a, d.b, d.metric) == ("a", "b", "top1_accuracy"))
    assert ab.difference == pytest.approx(0.4, abs=0.1) and ab.low > 0 and ab.p_holm < 0.01
    assert len(diff) == 6  # 3 pairs, 2 metrics; Holm over the 3 pairs of each metric
    ac = next(d for d in diff if (d.a, d.b, d.metric) == ("a", "c", "macro_f1"))
    assert ac.p_holm == 1.0


def test_the_champion_of_a_three_way_tie_is_the_cheapest_in_any_order():
    """Three architectures at 1.000 and one clearly worse: the rule's answer is the one with
    the lowest latency (then parameters), whatever order the rows come in."""
    preds = {"lrcn": LABELS, "convlstm": LABELS, "efficientnetb7_lstm": LABELS,
             "vgg16_bilstm": np.where(GROUPS <= 4, (LABELS + 1) % 4, LABELS)}
    costs = {"lrcn": (4.0, 35220), "convlstm": (9.0, 60000),
             "efficientnetb7_lstm": (90.0, 64_000_000), "vgg16_bilstm": (20.0, 15_000_000)}
    answers = set()
    for order in (list(preds), list(reversed(preds)), sorted(preds)):
        metrics = {a: {"macro_f1": 1.0 if a != "vgg16_bilstm" else 0.5,
                       "latency_ms": costs[a][0], "parameters": costs[a][1]} for a in order}
        diffs = stats.paired_differences(LABELS, GROUPS, {a: preds[a] for a in order}, 4)
        answers.add(stats.choose_champion(metrics, diffs, "macro_f1", 0.05,
                                          ["latency_ms", "parameters"]))
    (answer,) = answers
    assert answer.champion == "lrcn" and answer.tied == ("convlstm", "efficientnetb7_lstm",
                                                         "lrcn")
    assert "not significantly worse" in answer.reason and "4.0 ms per clip" in answer.reason
    # latency tied too: parameters decide
    costs["convlstm"] = (4.0, 1000)
    metrics = {a: {"macro_f1": 1.0, "latency_ms": costs[a][0], "parameters": costs[a][1]}
               for a in ("lrcn", "convlstm")}
    assert stats.choose_champion(metrics, [], "macro_f1", 0.05,
                                 ["latency_ms", "parameters"]).champion == "convlstm"
