"""`actionrec protocol` (protocol.py): the three official splits as DVC experiments, on a
copy of the tiny run reduced to LRCN at one epoch (the synthetic source writes three
splits, its test groups moving with the split); the report's ranking and champion of
several architectures on constructed figures."""

from __future__ import annotations

import statistics

import pytest
import yaml

from actionrec.protocol import FIGURES, Planned, Result, champion, plan, render
from tests.helpers import copy_project, run_cmd

#: One architecture: each one more costs every experiment a training, an evaluation and
#: their process starts (docs/benchmarks.md, "The protocol"); the ranking of several is
#: the constructed test's.
ARCHS = ["lrcn"]


def test_each_split_gets_its_own_seed_and_split_1s_first_run_is_the_workspaces(repo_params):
    from actionrec.config import parse_params

    raw = {**{k: v for k, v in repo_params.items() if k != "profiles"},
           "protocol": {"splits": [3, 1], "runs_per_split": 2}}
    planned = plan(parse_params(raw, source="params.yaml"))
    assert planned == [Planned(1, 0, 42), Planned(1, 1, 43), Planned(3, 0, 242),
                       Planned(3, 1, 243)]
    assert planned[0].name == "protocol-s1-r0"


def test_the_report_ranks_the_architectures_and_names_the_champion_by_the_mean():
    """Each figure's table lists the architectures by their mean over every run, best first;
    the champion is the best mean of `compare.metric`, whatever one split says (ConvLSTM
    wins split 1 and loses the mean)."""
    planned = [Planned(s, 0, 42 + 100 * (s - 1)) for s in (1, 2, 3)]
    top1 = {"lrcn": [0.70, 0.90, 0.80], "convlstm": [0.95, 0.60, 0.65]}
    values = {a: {f: {(s, 0): x for s, x in zip((1, 2, 3), xs, strict=True)} for f in FIGURES}
              for a, xs in top1.items()}
    result = Result(values, planned, {1: [1, 2], 2: [3, 4], 3: [5, 6]}, ["A", "B"],
                    {p.name: "0" * 40 for p in planned})
    assert champion(result, "macro_f1") == "lrcn"
    report = render(result, "macro_f1", "f" * 40)
    table = report[report.index("## top1 accuracy"):]
    assert table.index("| lrcn | 0.700 | 0.900 | 0.800 | 0.800 ± 0.100 |") < \
        table.index("| convlstm | 0.950 | 0.600 | 0.650 | 0.733 ± 0.189 |")
    assert "## Champion by the 3-split mean: **lrcn**" in report
    assert "Highest mean macro f1: 0.800 ± 0.100" in report
    assert "no two splits test the same groups" in report
    result.test_groups[3] = [1, 2]
    assert "**two splits test the same groups**" in render(result, "macro_f1", "f" * 40)


@pytest.mark.slow
def test_protocol_reports_every_split_from_dvc_and_a_second_run_trains_nothing(
        tiny_run, tmp_path):
    import dvc.api
    from mlflow import MlflowClient

    project = copy_project(tiny_run, tmp_path / "project")
    params = yaml.safe_load((project / "params.yaml").read_text())
    for arch in ARCHS:
        params["models"][arch]["epochs"] = 1
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    first = run_cmd(["actionrec", "protocol", "--architectures", *ARCHS], cwd=project,
                    timeout=1500)
    assert "running 3 experiment(s)" in first.stdout
    report = (project / "reports" / "protocol.md").read_text()
    assert (project / "reports" / "protocol.png").stat().st_size > 0

    # every architecture x split, and each mean and sd as computed from `dvc exp show`
    rows = {r["Experiment"]: r for r in dvc.api.exp_show(repo=str(project))
            if r.get("Experiment")}
    assert {"protocol-s1-r0", "protocol-s2-r0", "protocol-s3-r0"} <= set(rows)
    assert [rows[f"protocol-s{s}-r0"]["data.split"] for s in (1, 2, 3)] == [1, 2, 3]
    for arch in ARCHS:
        for figure in FIGURES:
            xs = [rows[f"protocol-s{s}-r0"][f"reports/evaluate/{arch}/metrics.json:{figure}"]
                  for s in (1, 2, 3)]
            cells = " | ".join(f"{x:.3f}" for x in xs)
            line = (f"| {arch} | {cells} | {statistics.fmean(xs):.3f} ± "
                    f"{statistics.stdev(xs):.3f} |")
            assert line in report, (arch, figure, line)
    # the same classes everywhere; other test groups in each split; what varied
    assert "Classes, the same in every split" in report
    assert "no two splits test the same groups" in report
    assert "protocol-s2-r0 142" in report and "Champion by the 3-split mean" in report

    # MLflow: one parent run, each experiment's training runs its children
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    parent = client.search_runs(experiments, "tags.`dvc_stage` = 'protocol'")
    assert len(parent) == 1
    children = client.search_runs(
        experiments, f"tags.`mlflow.parentRunId` = '{parent[0].info.run_id}'")
    assert sorted((r.data.tags["protocol.experiment"], r.data.tags["architecture"])
                  for r in children) == sorted((f"protocol-s{s}-r0", a)
                                               for s in (1, 2, 3) for a in ARCHS)

    again = run_cmd(["actionrec", "protocol", "--architectures", *ARCHS], cwd=project)
    assert "nothing to run" in again.stdout and "Running stage" not in again.stdout
    assert (project / "reports" / "protocol.md").read_text() == report
