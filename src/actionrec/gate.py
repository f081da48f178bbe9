"""The CI regression gate: this run's test metrics against a committed baseline.

The baseline is a copy of the tiny profile's ``reports/evaluate/<arch>/metrics.json`` files kept
in git under ``gate.baseline`` (``ci/baseline/<arch>/metrics.json``). The gate fails when,
for any architecture in the baseline,

- the architecture has no ``metrics.json`` in this run (missing architecture),
- a gated metric (``gate.metrics``) is absent or not a finite number (missing metric), or
- a gated metric dropped by more than ``gate.tolerance`` (absolute, metrics in [0, 1];
  per architecture).

Training is deterministic (``training.set_determinism``), so a rerun on the same machine
reproduces the baseline exactly; the tolerance (``gate.tolerance``, per architecture)
only absorbs floating-point differences between CPUs (``benchmarks/gate_numerics.py``).
The gated metrics (``gate.metrics``) are test top-1 accuracy, macro-F1 and training top-1
accuracy. Improvements and architectures new
to this run pass and are listed, so the table says when the baseline is worth updating.
Beside each check the table shows this run's interval over the test groups, where
``metrics.json`` has one (``<metric>_ci_low`` / ``_ci_high``: how far the tiny test split's
few groups let the figure be trusted; the gate's verdict does not use it).
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from actionrec.errors import ActionrecError
from actionrec.io import write_json

#: Row statuses, in the order a reader cares about them.
FAILING = ("missing architecture", "missing metric", "regressed")


@dataclass(frozen=True)
class GateRow:
    """One (architecture, metric) comparison; values are fractions in [0, 1] or None."""

    architecture: str
    metric: str
    baseline: float | None
    current: float | None
    status: str  # "ok", "improved", "new", or one of FAILING
    interval: tuple[float, float] | None = None  # this run's interval over test groups

    @property
    def change(self) -> float | None:
        if self.baseline is None or self.current is None:
            return None
        return self.current - self.baseline

    @property
    def failed(self) -> bool:
        return self.status in FAILING


def read_metrics(root: Path) -> dict[str, dict]:
    """``{architecture: metrics}`` from every ``<root>/<arch>/metrics.json``.

    Raises:
        ActionrecError: ``root`` is not a directory, or a ``metrics.json`` is not JSON.
    """
    if not root.is_dir():
        raise ActionrecError(f"no metrics directory at {root}")
    out = {}
    for path in sorted(root.glob("*/metrics.json")):
        try:
            out[path.parent.name] = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ActionrecError(f"{path} is not valid JSON: {err}") from err
    return out


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def compare(baseline: dict[str, dict], current: dict[str, dict],
            metrics: list[str] | Callable[[str], list[str]],
            tolerance: float | Callable[[str], float]) -> list[GateRow]:
    """Every (architecture, metric) of ``baseline`` and ``current``, judged.

    Args:
        baseline, current: ``{architecture: metrics.json content}``.
        metrics: the gated keys, e.g. ``["top1_accuracy", "macro_f1"]``, or a function
            giving them per architecture (``GateSettings.metrics_for``).
        tolerance: largest allowed drop (absolute), or a function giving it per architecture
            (``GateSettings.tolerance_for``); a drop of exactly the tolerance passes.

    Returns:
        Rows sorted by architecture then metric order; ``row.failed`` marks the failures.
    """
    metrics_for = metrics if callable(metrics) else (lambda _arch: metrics)
    tolerance_for = tolerance if callable(tolerance) else (lambda _arch: tolerance)
    rows = []
    for arch in sorted(set(baseline) | set(current)):
        for metric in metrics_for(arch):
            base = _number(baseline[arch].get(metric)) if arch in baseline else None
            cur = _number(current[arch].get(metric)) if arch in current else None
            if arch not in baseline:
                status = "new"
            elif arch not in current:
                status = "missing architecture"
            elif cur is None:
                status = "missing metric"
            elif base is None:
                status = "new"
            elif base - cur > tolerance_for(arch) + 1e-12:
                status = "regressed"
            else:
                status = "improved" if cur > base else "ok"
            got = current.get(arch, {})
            low, high = (_number(got.get(f"{metric}_ci_{end}")) for end in ("low", "high"))
            interval = (low, high) if low is not None and high is not None else None
            rows.append(GateRow(arch, metric, base, cur, status, interval))
    return rows


def markdown(rows: list[GateRow], tolerance: float | dict[str, float]) -> str:
    """The rows as a Markdown table with a one-line verdict above it; ``tolerance``: one
    number, or ``{"default": ..., <arch>: ...}`` (``GateSettings.tolerance``)."""
    failed = [r for r in rows if r.failed]
    if isinstance(tolerance, dict):
        tol = f"tolerance {tolerance['default']:g}" + "".join(
            f", {a} {v:g}" for a, v in sorted(tolerance.items()) if a != "default")
    else:
        tol = f"tolerance {tolerance:g}"
    head = (f"**Regression gate: FAILED** ({len(failed)} of {len(rows)} checks; {tol})"
            if failed else f"**Regression gate: passed** ({len(rows)} checks; {tol})")

    def fmt(v: float | None, sign: bool = False) -> str:
        return "—" if v is None else (f"{v:+.3f}" if sign else f"{v:.3f}")

    lines = [head, "", "| architecture | metric | baseline | this run | this run's interval "
             "| change | status |", "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        status = f"**{r.status}**" if r.failed else r.status
        interval = "—" if r.interval is None else f"[{r.interval[0]:.3f}, {r.interval[1]:.3f}]"
        lines.append(f"| {r.architecture} | {r.metric} | {fmt(r.baseline)} | "
                     f"{fmt(r.current)} | {interval} | {fmt(r.change, sign=True)} | {status} |")
    return "\n".join(lines) + "\n"


def update_baseline(reports: Path, baseline: Path) -> list[str]:
    """Copy every ``<reports>/<arch>/metrics.json`` into ``<baseline>/<arch>/``.

    Architectures in the old baseline but not in ``reports`` are removed, so the new
    baseline is exactly this run. Files are written atomically.

    Returns:
        The architectures written.

    Raises:
        ActionrecError: ``reports`` holds no ``metrics.json``.
    """
    current = read_metrics(reports) if reports.is_dir() else {}
    if not current:
        raise ActionrecError(f"no <arch>/metrics.json under {reports}: run the pipeline first")
    if baseline.is_dir():
        for old in baseline.iterdir():
            if old.is_dir() and old.name not in current:
                shutil.rmtree(old)
    for arch, metrics in current.items():
        write_json(baseline / arch / "metrics.json", metrics)
    return sorted(current)
