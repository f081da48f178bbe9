"""``actionrec protocol``: the field's evaluation protocol, the three official splits.

Published UCF101 results are the mean over the three official train/test splits (TSN:
94.0 on the three-split mean against 93.5 on split 1 alone). The protocol runs the
pipeline once per split as a DVC experiment (``dvc exp run --queue -n protocol-s<S>-r<R>
-S data.split=S -S seed=<seed>``, then ``dvc exp run --run-all``), reads every
experiment's metrics back through DVC's own API (:func:`dvc.api.exp_show`), and writes
``reports/protocol.md`` and ``reports/protocol.png``: per architecture, each split's
figures, their mean and standard deviation, and the champion by the three-split mean.

What varies between the runs: the split (which groups are test, and so the training and
validation clips), and the seed (initialisation, shuffling, augmentation, the
validation draw's is ``data.val_seed`` and stays). Varying several sources of variation
at once estimates the spread better at the same cost (Bouthillier et al., "Accounting
for Variance in Machine Learning Benchmarks", MLSys 2021). Run ``r`` of split ``s`` uses
seed ``seed + 100 (s - 1) + r``: split 1's first run is the workspace's own run, which
DVC's run cache restores without training. ``protocol.runs_per_split`` above 1 repeats
each split with other seeds.

An experiment of this baseline commit with the same name and the same params is kept: a
second ``actionrec protocol`` with nothing changed queues nothing and trains nothing. In
MLflow, one parent run ``protocol`` per baseline commit; every training run of the
protocol's experiments becomes its child (``mlflow.parentRunId``).
"""

from __future__ import annotations

import json
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actionrec.config import ARCHITECTURES, Params, load_params
from actionrec.errors import ActionrecError
from actionrec.io import atomic_open, write_text

#: The figures the report holds, per architecture (keys of evaluate@'s metrics.json).
FIGURES = ("top1_accuracy", "video_top1_accuracy", "macro_f1", "video_macro_f1")
#: A run's seed: ``seed + SEED_STRIDE * (split - 1) + run``.
SEED_STRIDE = 100


@dataclass(frozen=True)
class Planned:
    """One experiment of the protocol."""

    split: int
    run: int
    seed: int

    @property
    def name(self) -> str:
        """The experiment's name in ``dvc exp show``: ``protocol-s<split>-r<run>``."""
        return f"protocol-s{self.split}-r{self.run}"


def plan(params: Params) -> list[Planned]:
    """The experiments of ``params.protocol``: each split, ``runs_per_split`` times, each
    with its own seed (module docstring)."""
    p = params.protocol
    return [Planned(s, r, params.seed + SEED_STRIDE * (s - 1) + r)
            for s in p.splits for r in range(p.runs_per_split)]


def _dvc(repo: Path, *args: str, stream: bool = False) -> subprocess.CompletedProcess:
    """Run ``dvc ARGS`` in ``repo``. Raises ActionrecError naming the command on failure."""
    proc = subprocess.run(["dvc", *args], cwd=repo, text=True,
                          capture_output=not stream)
    if proc.returncode != 0:
        tail = "" if stream else f": {(proc.stderr or proc.stdout).strip()[-1500:]}"
        raise ActionrecError(f"`dvc {' '.join(args)}` failed ({proc.returncode}){tail}")
    return proc


def experiments(repo: Path) -> list[dict[str, Any]]:
    """``dvc exp show``'s rows of the baseline commit (:func:`dvc.api.exp_show`): the
    workspace, the baseline and its experiments, each a flat mapping of params (``seed``,
    ``data.split``) and metrics (``reports/evaluate/<arch>/metrics.json:<key>``)."""
    import dvc.api

    return dvc.api.exp_show(repo=str(repo))


def _same_params(row: dict[str, Any], workspace: dict[str, Any], planned: Planned,
                 param_keys: list[str]) -> bool:
    """Whether the experiment ``row`` ran ``planned`` on the workspace's other params."""
    want = {**{k: workspace.get(k) for k in param_keys},
            "data.split": planned.split, "seed": planned.seed}
    return all(row.get(k) == v for k, v in want.items())


def _param_keys(workspace: dict[str, Any], params_file: Path) -> list[str]:
    """The params columns of ``dvc exp show``: its columns that are keys of the params
    file (flattened); not metrics, dependencies' hashes or bookkeeping fields."""
    from actionrec.config import flatten, read_raw

    raw = {k: v for k, v in read_raw(params_file).items() if k != "profiles"}
    known = set(flatten(raw))
    return [k for k in workspace if k in known]


def queue_missing(repo: Path, planned: list[Planned], targets: list[str],
                  params_file: Path) -> list[Planned]:
    """Queue each planned experiment that this baseline has not run on these params
    (an older one of the same name is removed first); returns those queued."""
    rows = experiments(repo)
    workspace = next(r for r in rows if r["rev"] == "workspace")
    keys = [k for k in _param_keys(workspace, params_file) if k not in ("data.split", "seed")]
    # `dvc exp show` gives no code hashes for experiments: they ran this commit's code,
    # which an uncommitted edit of the pipeline's code makes stale
    edited = subprocess.run(["git", "status", "--porcelain", "--", "src", "stages",
                             "dvc.yaml"], cwd=repo, capture_output=True, text=True).stdout
    if edited.strip():
        print("protocol: the pipeline's code has uncommitted changes; every experiment runs "
              "again (commit them to keep the experiments of a commit)", flush=True)
    have = {} if edited.strip() else {r["Experiment"]: r for r in rows if r.get("Experiment")}
    named = {r["Experiment"] for r in rows if r.get("Experiment")}
    queued = []
    for p in planned:
        old = have.get(p.name)
        if old is not None and old.get("State") in (None, "Success") \
                and _same_params(old, workspace, p, keys):
            continue
        if p.name in named:
            _dvc(repo, "exp", "remove", p.name)
        _dvc(repo, "exp", "run", "--queue", "-n", p.name, "-S", f"data.split={p.split}",
             "-S", f"seed={p.seed}", *targets)
        queued.append(p)
    return queued


@dataclass
class Result:
    """The protocol's figures: ``values[arch][figure][(split, run)]``; ``revs``: each
    experiment's commit (by name)."""

    values: dict[str, dict[str, dict[tuple[int, int], float]]]
    planned: list[Planned]
    test_groups: dict[int, list[int]]
    classes: list[str]
    revs: dict[str, str]

    def summary(self, arch: str, figure: str) -> tuple[float, float]:
        """Mean and sample standard deviation over every run (0 with one run)."""
        xs = list(self.values[arch][figure].values())
        return statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0


def collect(repo: Path, planned: list[Planned], archs: list[str]) -> Result:
    """Each planned experiment's figures from ``dvc exp show``, its classes and its test
    groups (``data/manifest.csv`` at the experiment's commit, :func:`dvc.api.read`).

    Raises:
        ActionrecError: an experiment is missing or failed, a figure is missing, or the
            splits' classes differ.
    """
    import io

    import dvc.api
    import pandas as pd

    rows = {r["Experiment"]: r for r in experiments(repo) if r.get("Experiment")}
    values: dict[str, dict[str, dict[tuple[int, int], float]]] = {
        a: {f: {} for f in FIGURES} for a in archs}
    groups: dict[int, list[int]] = {}
    classes: list[str] | None = None
    for p in planned:
        row = rows.get(p.name)
        if row is None or row.get("State") not in (None, "Success"):
            raise ActionrecError(f"experiment {p.name} did not finish ({row and row.get('State')}"
                                 f"); see `dvc queue logs {p.name}`, then run the protocol "
                                 "again")
        for a in archs:
            for f in FIGURES:
                value = row.get(f"reports/evaluate/{a}/metrics.json:{f}")
                if not isinstance(value, int | float):
                    raise ActionrecError(f"experiment {p.name} has no {f} for {a}")
                values[a][f][p.split, p.run] = float(value)
        manifest = pd.read_csv(io.StringIO(dvc.api.read("data/manifest.csv", repo=str(repo),
                                                        rev=row["rev"])))
        groups[p.split] = sorted(int(g) for g in
                                 set(manifest.loc[manifest["split"] == "test", "group"]))
        these = json.loads(dvc.api.read("data/classes.json", repo=str(repo), rev=row["rev"]))
        if classes is not None and these != classes:
            raise ActionrecError(f"experiment {p.name} has other classes ({these}) than the "
                                 f"others ({classes})")
        classes = these
    return Result(values, planned, groups, classes or [],
                  {p.name: rows[p.name]["rev"] for p in planned})


def champion(result: Result, metric: str) -> str:
    """The architecture with the highest mean ``metric`` over every run (ties: by name)."""
    return max(sorted(result.values), key=lambda a: result.summary(a, metric)[0])


def render(result: Result, metric: str, baseline: str) -> str:
    """``reports/protocol.md``."""
    splits = sorted({p.split for p in result.planned})
    runs = sorted({p.run for p in result.planned})
    distinct = len({tuple(g) for g in result.test_groups.values()}) == len(result.test_groups)
    lines = [
        "# Evaluation protocol: the official splits", "",
        f"Baseline commit `{baseline[:12]}`; {len(result.planned)} experiments "
        f"(`dvc exp show`: {', '.join(f'`{p.name}`' for p in result.planned)}).", "",
        f"Classes, the same in every split (split 1's top {len(result.classes)} by train "
        f"count): {', '.join(result.classes)}.", "",
        "What varied between the runs: the split (its test groups: "
        + "; ".join(f"split {s}: {', '.join(map(str, result.test_groups[s]))}"
                    for s in splits)
        + ("; no two splits test the same groups" if distinct else
           "; **two splits test the same groups**")
        + ") and the seed (initialisation, shuffling, augmentation: "
        + ", ".join(f"{p.name} {p.seed}" for p in result.planned) + ").", "",
        "Read against published UCF101 numbers with care: this is a subset of the 101 "
        "classes (top-N), not the benchmark itself.", ""]
    for f in FIGURES:
        head = [f"split {s}" + (f" run {r}" if len(runs) > 1 else "") for s in splits
                for r in runs]
        lines += [f"## {f.replace('_', ' ')}", "",
                  "| architecture | " + " | ".join(head) + " | mean ± sd |",
                  "|---|" + "---:|" * (len(head) + 1)]
        for a in sorted(result.values, key=lambda a: -result.summary(a, f)[0]):
            mean, sd = result.summary(a, f)
            cells = [f"{result.values[a][f][s, r]:.3f}" for s in splits for r in runs]
            lines.append(f"| {a} | " + " | ".join(cells) + f" | {mean:.3f} ± {sd:.3f} |")
        lines.append("")
    best = champion(result, metric)
    mean, sd = result.summary(best, metric)
    lines += [f"## Champion by the {len(splits)}-split mean: **{best}**", "",
              f"Highest mean {metric.replace('_', ' ')}: {mean:.3f} ± {sd:.3f} "
              f"(`compare.metric` in params.yaml).", ""]
    return "\n".join(lines)


def plot(result: Result, metric: str, path: Path) -> None:
    """``reports/protocol.png``: per architecture, each run's ``metric`` as a point and the
    mean ± sd as a bar with an error bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    archs = sorted(result.values)
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(archs), 3.8))
    for i, a in enumerate(archs):
        mean, sd = result.summary(a, metric)
        ax.bar(i, mean, yerr=sd, color="#9ecae1", capsize=4, width=0.6)
        for (s, _), v in sorted(result.values[a][metric].items()):
            ax.plot(i + 0.18 * (s - 2), v, "o", color=f"C{s - 1}",
                    label=f"split {s}" if i == 0 else None)
    ax.set_xticks(range(len(archs)), archs, rotation=20, ha="right")
    ax.set_ylim(0, 1.02)
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title("each split, and the mean ± sd over the splits")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)


def link_runs(repo: Path, result: Result, params: Params, uri: str, baseline: str) -> str:
    """One MLflow parent run ``protocol`` per baseline commit (reused by a second call);
    every training run of the protocol's experiments (``models/<arch>/mlflow_run.json``
    at the experiment's commit) becomes its child. Returns the parent's id."""
    import dvc.api
    from mlflow import MlflowClient

    from actionrec.tracking import store

    experiment_id = store.setup(uri, params.experiment_name(), repo)
    client = MlflowClient(uri)
    found = client.search_runs([experiment_id],
                               f"tags.`protocol.baseline` = '{baseline}'", max_results=1)
    parent = found[0].info.run_id if found else client.create_run(
        experiment_id, run_name="protocol",
        tags={"protocol.baseline": baseline, "dvc_stage": "protocol"}).info.run_id
    children = {}
    for p in result.planned:
        for a in result.values:
            run = json.loads(dvc.api.read(f"models/{a}/mlflow_run.json", repo=str(repo),
                                          rev=result.revs[p.name]))
            children[run["run_id"]] = p.name
    earlier = client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'")
    for run in earlier:  # runs of experiments since replaced (other params)
        if run.info.run_id not in children:
            client.delete_tag(run.info.run_id, "mlflow.parentRunId")
            client.delete_tag(run.info.run_id, "protocol.experiment")
    for run_id, name in children.items():
        client.set_tag(run_id, "mlflow.parentRunId", parent)
        client.set_tag(run_id, "protocol.experiment", name)
    for a in result.values:
        for f in FIGURES:
            mean, sd = result.summary(a, f)
            client.log_metric(parent, f"{a}.{f}_mean", mean)
            client.log_metric(parent, f"{a}.{f}_sd", sd)
    client.set_terminated(parent, "FINISHED")
    return parent


def run_protocol(params_path: str = "params.yaml", repo: Path = Path("."),
                 archs: list[str] | None = None, out: Path = Path("reports"),
                 uri: str | None = None) -> Result:
    """The protocol (module docstring): queue what is missing, run it, report, link.

    Args:
        archs: the architectures to run and report (default: all); with a subset, each
            experiment runs only their ``evaluate@`` stages and what they need.

    Raises:
        ActionrecError: a DVC command or an experiment failed (its logs named).
    """
    from actionrec.tracking import runs, store

    params_file = Path(repo) / params_path
    params = load_params(params_file)
    archs = list(archs or ARCHITECTURES)
    targets = [f"evaluate@{a}" for a in archs] if set(archs) != set(ARCHITECTURES) else []
    planned = plan(params)
    queued = queue_missing(repo, planned, targets, params_file)
    if queued:
        print(f"protocol: running {len(queued)} experiment(s): "
              + ", ".join(p.name for p in queued), flush=True)
        _dvc(repo, "exp", "run", "--run-all", "-j", "1", stream=True)
    else:
        print("protocol: every experiment is done for this commit and these params; "
              "nothing to run", flush=True)
    result = collect(repo, planned, archs)
    baseline = runs.git_commit(Path(repo))
    metric = params.compare.metric
    out = Path(repo) / out
    write_text(out / "protocol.md", render(result, metric, baseline))
    plot(result, metric, out / "protocol.png")
    parent = link_runs(repo, result, params,
                       uri or store.tracking_uri(params.mlflow.tracking_uri, Path(repo)),
                       baseline)
    print(f"protocol: {out / 'protocol.md'} and protocol.png; champion by the mean "
          f"{metric}: {champion(result, metric)}; MLflow parent run {parent}", flush=True)
    return result
