"""How sure a test-split metric is, and whether two architectures really differ.

UCF101's test split holds about 190 clips of the top-5 classes, in 7 groups per class; the
clips of one group share an actor and a scene, so they are not independent samples, and a
difference of one or two clips between two architectures is noise. Everything here
resamples **test groups** (a group is a ``(class, group)`` pair: UCF101's ``gNN`` within a
class; the synthetic source's groups), not clips: the cluster bootstrap (Efron &
Tibshirani, "An Introduction to the Bootstrap", 1993, §8; Field & Welsh, "Bootstrapping
clustered data", JRSS B 2007), stratified by class so that every resample keeps the
split's classes. A resample is a weight per clip (how often its group was drawn), so one
matrix product computes a metric on all resamples at once.

- :func:`metric_intervals`: top-1 accuracy and macro-F1 of one architecture with a
  confidence interval that stays honest at the boundary. Top-1: the Wilson score interval
  (Wilson, JASA 1927) at the effective sample size ``n / deff`` (Kish, "Survey Sampling",
  1965), the design effect ``deff`` being the group bootstrap's variance of top-1 over the
  binomial one (at least 1; where nothing varies, 64 of 64 right, the worst case: the mean
  group size, every group one observation). A percentile bootstrap of 64 right out of 64
  says [1, 1]; this says about [0.68, 1] for 8 groups of 8. (So a perfect score can get a
  wider interval than a near-perfect one whose few errors show no clustering: at the
  boundary nothing says how correlated a group's clips are, and the worst is assumed.)
  Macro-F1 is not a proportion: its interval is the union of the group bootstrap's
  percentile interval and that Wilson interval around its estimate (at the boundary both
  metrics are 1, and the union keeps the Wilson bound).
- :func:`paired_differences`: every pair on the same test clips, the difference of each
  metric with its paired group-bootstrap percentile interval and a two-sided p-value (the
  share of resampled differences on the far side of zero, doubled; +1 corrected), Holm-
  adjusted over the pairs (Holm, Scand. J. Statist. 1979; ``statsmodels``'
  ``multipletests``).
- :func:`choose_champion`: among the architectures not significantly worse than the best
  (Holm-adjusted p >= alpha, or a difference not in the best's favour), the cheapest by
  the rule's cost keys (latency per clip, then parameters), then by name: the same answer
  in any row order and on every rerun.

Everything is seeded (``numpy.random.default_rng(seed)``): a rerun gives the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import combinations
from typing import Any

import numpy as np

METRICS = ("top1_accuracy", "macro_f1")


def cluster_ids(labels: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """``(N,)`` int64 cluster of each clip: one per distinct ``(label, group)`` pair."""
    pairs = np.stack([np.asarray(labels, np.int64), np.asarray(groups, np.int64)], axis=1)
    return np.unique(pairs, axis=0, return_inverse=True)[1].reshape(-1)


def bootstrap_weights(labels: np.ndarray, clusters: np.ndarray, resamples: int,
                      seed: int) -> np.ndarray:
    """``(resamples, N)`` float64 weights of a class-stratified cluster bootstrap: for each
    class, its clusters drawn with replacement as many times as it has; a clip's weight is
    how often its cluster was drawn (0, 1, 2, ...).

    Raises:
        ValueError: ``resamples < 1``.
    """
    if resamples < 1:
        raise ValueError(f"resamples={resamples}: need at least 1")
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    counts = np.zeros((resamples, int(clusters.max()) + 1))
    for c in np.unique(labels):
        own = np.unique(clusters[labels == c])
        drawn = rng.integers(0, len(own), size=(resamples, len(own)))
        np.add.at(counts, (np.arange(resamples)[:, None], own[drawn]), 1.0)
    return counts[:, clusters]


def weighted_metrics(weights: np.ndarray, labels: np.ndarray, pred: np.ndarray,
                     num_classes: int) -> dict[str, np.ndarray]:
    """Top-1 accuracy and macro-F1 (``2 TP / (predicted + true)`` per class, 0 where a class
    is neither predicted nor present, averaged over all ``num_classes``: scikit-learn's
    ``f1_score(average="macro", zero_division=0)`` with ``labels=range(C)``) under each row
    of ``weights`` ``(B, N)``; each ``(B,)`` float64. A row of ones gives the plain metrics."""
    onehot = np.eye(num_classes)
    true, predicted = onehot[labels], onehot[pred]
    total = weights.sum(axis=1)
    tp = weights @ (true * predicted)
    denom = weights @ predicted + weights @ true
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"top1_accuracy": (weights @ (labels == pred)) / total,
            "macro_f1": f1.mean(axis=1)}


def wilson(p: float, n: float, level: float) -> tuple[float, float]:
    """Wilson score interval of a proportion ``p`` observed on ``n`` (possibly fractional,
    effective) trials at confidence ``level``."""
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + level / 2))
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


def percentile_interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    """The central ``level`` share of bootstrap ``samples`` ``(B,)``: its percentiles."""
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class Interval:
    """A metric's estimate on the test split and its confidence interval."""

    estimate: float
    low: float
    high: float


def metric_intervals(labels: np.ndarray, pred: np.ndarray, groups: np.ndarray,
                     num_classes: int, level: float = 0.95, resamples: int = 2000,
                     seed: int = 0) -> dict[str, Any]:
    """Top-1 accuracy and macro-F1 of predictions ``pred`` ``(N,)`` int against ``labels``
    ``(N,)`` int, with ``level`` intervals over the test groups ``groups`` ``(N,)`` int
    (method: the module's docstring).

    Returns:
        ``{"top1_accuracy": Interval, "macro_f1": Interval, "design_effect": float,
        "effective_n": float, "n_groups": int}``.
    """
    labels, pred = np.asarray(labels, np.int64), np.asarray(pred, np.int64)
    clusters = cluster_ids(labels, groups)
    n, n_groups = len(labels), int(clusters.max()) + 1
    point = {k: float(v[0]) for k, v in
             weighted_metrics(np.ones((1, n)), labels, pred, num_classes).items()}
    boot = weighted_metrics(bootstrap_weights(labels, clusters, resamples, seed), labels,
                            pred, num_classes)
    p = point["top1_accuracy"]
    binomial = p * (1 - p) / n
    mean_size = n / n_groups
    deff = (float(np.clip(boot["top1_accuracy"].var() / binomial, 1.0, mean_size))
            if binomial > 0 else mean_size)
    n_eff = n / deff
    out: dict[str, Any] = {"design_effect": deff, "effective_n": n_eff, "n_groups": n_groups}
    for key in METRICS:
        lo, hi = wilson(point[key], n_eff, level)
        if key != "top1_accuracy":
            q_lo, q_hi = percentile_interval(boot[key], level)
            lo, hi = min(lo, q_lo), max(hi, q_hi)
        out[key] = Interval(point[key], lo, hi)
    return out


@dataclass(frozen=True)
class Difference:
    """``a - b`` of one metric on the same test clips, its interval and p-values."""

    a: str
    b: str
    metric: str
    difference: float
    low: float
    high: float
    p: float
    p_holm: float = float("nan")


def paired_differences(labels: np.ndarray, groups: np.ndarray, preds: dict[str, np.ndarray],
                       num_classes: int, level: float = 0.95, resamples: int = 2000,
                       seed: int = 0) -> list[Difference]:
    """Every pair ``(a, b)`` of ``preds`` (``{architecture: (N,) int predictions}``, on the
    same clips, in sorted order of names), for each of :data:`METRICS`: the difference
    ``a - b``, its paired group-bootstrap percentile interval (the same resampled groups
    for both) and its p-value, Holm-adjusted over the pairs of that metric."""
    from statsmodels.stats.multitest import multipletests

    labels = np.asarray(labels, np.int64)
    clusters = cluster_ids(labels, groups)
    weights = np.vstack([np.ones((1, len(labels))),
                         bootstrap_weights(labels, clusters, resamples, seed)])
    scores = {a: weighted_metrics(weights, labels, np.asarray(p, np.int64), num_classes)
              for a, p in preds.items()}
    out = []
    for metric in METRICS:
        rows = []
        for a, b in combinations(sorted(preds), 2):
            d = scores[a][metric] - scores[b][metric]
            point, boot = float(d[0]), d[1:]
            far = min(int((boot <= 0).sum()), int((boot >= 0).sum()))
            p = min(1.0, 2 * (far + 1) / (len(boot) + 1))
            rows.append(Difference(a, b, metric, point, *percentile_interval(boot, level), p))
        if rows:
            adjusted = multipletests([r.p for r in rows], method="holm")[1]
            rows = [replace(r, p_holm=float(q)) for r, q in zip(rows, adjusted, strict=True)]
        out += rows
    return out


@dataclass(frozen=True)
class Champion:
    """The rule's answer: the champion, the best by the metric, and those it tied with."""

    champion: str
    best: str
    tied: tuple[str, ...]  # not significantly worse than the best (the best included)
    metric: str
    reason: str


def choose_champion(metrics: dict[str, dict[str, Any]], differences: Sequence[Difference],
                    metric: str, alpha: float, cost: Sequence[str]) -> Champion:
    """The champion by the rule: among the architectures not significantly worse than the
    best by ``metric`` (an architecture is worse when its difference from the best favours
    the best with a Holm-adjusted p below ``alpha``), the cheapest by ``cost`` (keys of
    ``metrics``, lower is cheaper, in order), then by name.

    ``metrics``: ``{architecture: metrics.json}``; ``differences``: of
    :func:`paired_differences` (pairs of sorted names).
    """
    names = sorted(metrics)

    def cheap(a: str) -> tuple:
        return (*(float(metrics[a][k]) for k in cost), a)

    best = min(names, key=lambda a: (-float(metrics[a][metric]), *cheap(a)))
    worse = set()
    for d in differences:
        if d.metric != metric or best not in (d.a, d.b) or d.p_holm >= alpha:
            continue
        other, favours_best = (d.b, d.difference > 0) if d.a == best else (d.a, d.difference < 0)
        if favours_best:
            worse.add(other)
    tied = tuple(a for a in names if a not in worse)
    champion = min(tied, key=cheap)
    others = [a for a in tied if a != champion]
    costs = ", ".join(_cost_text(k, metrics[champion][k]) for k in cost)
    if champion == best and not others:
        reason = (f"{champion} is the best by {metric} ({metrics[champion][metric]:.3f}) and "
                  f"every other architecture is significantly worse (Holm, alpha {alpha})")
    else:
        reason = (f"{', '.join(tied)} are not significantly worse than the best by {metric} "
                  f"({best}, {metrics[best][metric]:.3f}; Holm, alpha {alpha}); of those, "
                  f"{champion} is the cheapest ({costs})")
    return Champion(champion, best, tied, metric, reason)


def _cost_text(key: str, value: float) -> str:
    """``latency_ms`` 4.0 -> ``"4.0 ms per clip"``; ``parameters`` -> ``"35,220 parameters"``."""
    if key == "latency_ms":
        return f"{value:.1f} ms per clip"
    if key == "parameters":
        return f"{int(value):,} parameters"
    return f"{key} {value:g}"
