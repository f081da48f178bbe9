"""The ``actionrec`` commands that are not pipeline stages: the regression gate, predict,
tracking recovery, the team server, the synthetic generator, params and profiles.

No stage imports this module (``dvc.yaml`` lists none of it): a change here reruns nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from actionrec.config import load_params
from actionrec.errors import ActionrecError
from actionrec.io import write_text


def gate(params: str, reports: str, baseline: str | None, tolerance: float | None,
         summary: str | None, update: bool) -> bool:
    """CI regression gate: ``<reports>/<arch>/metrics.json`` against the committed baseline.

    Prints the comparison table (Markdown; also appended to ``summary``, e.g.
    ``$GITHUB_STEP_SUMMARY``). With ``update`` the baseline is rewritten from ``reports``
    instead. Settings come from ``gate:`` in params; ``baseline``/``tolerance`` override.

    Raises:
        ActionrecError: the gate failed (the message says how to update the baseline when
            the change is intended), or a metrics directory is missing.
    """
    from actionrec import gate as g

    cfg = load_params(params).gate
    base = Path(baseline or cfg.baseline)
    tol = cfg.tolerance if tolerance is None else tolerance
    if update:
        archs = g.update_baseline(Path(reports), base)
        print(f"gate: baseline {base} rewritten from {reports} ({', '.join(archs)}); "
              "commit it with the change that moved the metrics")
        return True
    rows = g.compare(g.read_metrics(base), g.read_metrics(Path(reports)), cfg.metrics_for,
                     cfg.tolerance_for if tolerance is None else tolerance)
    table = g.markdown(rows, tol)
    print(table, end="")
    if summary:
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(table + "\n")
    failed = [r for r in rows if r.failed]
    if failed:
        worst = ", ".join(sorted({f"{r.architecture} ({r.status})" for r in failed}))
        raise ActionrecError(
            f"regression gate failed: {worst}. If the change is intended, rewrite the "
            f"baseline with `make baseline` and commit {base}/.")
    return True


def predict_tracking_uri(params: str | None) -> str:
    """The MLflow store that ``models:/`` and ``runs:/`` URIs are looked up in when
    ``--tracking-uri`` is not given: ``$MLFLOW_TRACKING_URI``, else ``mlflow.tracking_uri``
    of ``params`` when that file exists (the team server the pipeline logged to), else
    ``sqlite:///mlflow.db`` here (:func:`actionrec.tracking.store.tracking_uri`).

    Raises:
        ConfigError: ``params`` exists but is invalid.
    """
    from actionrec.tracking.store import tracking_uri

    configured = None
    if params and Path(params).is_file():
        configured = load_params(params).mlflow.tracking_uri
    return tracking_uri(configured, Path("."))


def predict(videos: list[str], model: str, top_k: int = 3, window: float | None = None,
            stride: float | None = None, fps: float | None = None, plot: str | None = None,
            as_json: bool = False, tracking_uri: str | None = None,
            params: str | None = "params.yaml", views: int = 1) -> list[Any]:
    """``actionrec predict``: top-k actions (or a timeline) of each video, printed.

    Every input is tried; bad ones are reported on stderr and in the JSON, never raised.

    Raises:
        PredictError: the model cannot be loaded.
        ActionrecError: after printing, when any input gave no answer (exit status 1).
    """
    from tabulate import tabulate

    from actionrec import predict as pr
    from actionrec.runtime import print_runtime

    print_runtime("predict")
    predictor = pr.load_predictor(model, tracking_uri or predict_tracking_uri(params))
    paths, results = pr.find_videos(videos)
    results += [pr.predict_video(predictor, p, top_k, window, stride, fps, views=views)
                for p in paths]
    results.sort(key=lambda r: r.video)
    good = [r for r in results if r.ok]
    if as_json:
        print(json.dumps({"model": predictor.source,
                          "architecture": predictor.meta.get("architecture"),
                          "results": [r.to_json() for r in results]},
                         indent=2))
    else:
        rows = [[_video_cell(r) if i == 0 else "", i + 1, a, f"{p:.3f}"]
                for r in good for i, (a, p) in enumerate(r.top_k)]
        if rows:
            print(tabulate(rows, headers=["video", "rank", "action", "probability"],
                           tablefmt="simple"))
        for r in good:
            if r.timeline is not None:
                print(f"\n{r.video} ({r.duration_s:.1f} s, windows of {window:g} s):")
                print(tabulate([[f"{g.start_s:.2f}", f"{g.end_s:.2f}", g.action,
                                 f"{g.probability:.3f}"] for g in r.timeline],
                               headers=["start s", "end s", "action", "probability"]))
    if plot:
        for r in good:
            out = Path(plot) / f"{Path(r.video).name}.timeline.png"
            pr.plot_timeline(r, predictor.contract.classes, out)
            print(f"timeline plot: {out}", file=sys.stderr)
    bad = [r for r in results if not r.ok]
    for r in bad:
        print(f"skipped: {r.error}", file=sys.stderr)
    if bad:
        raise ActionrecError(f"{len(bad)} of {len(results)} input(s) gave no answer "
                             "(listed above as skipped)")
    return results


def _video_cell(result: Any) -> str:
    """The table's video cell: the path, flagged when the clip had fewer frames than ``T``."""
    p = result.padded
    if not p:
        return result.video
    return (f"{result.video} [short: {p['frames']} of {p['sequence_length']} frames, "
            f"{p['filled_by']}]")


def synthesize(params: str, out: str) -> Path:
    """Write the synthetic dataset of ``data.synthetic`` to ``out`` (outside the pipeline)."""
    from actionrec.data.sources import fetch_synthetic

    cfg = load_params(params)
    Path(out).mkdir(parents=True, exist_ok=True)
    fetch_synthetic(cfg.data, Path(out), Path(out))
    return Path(out)


def show_params(params: str) -> None:
    """Print the validated params as YAML."""
    import yaml

    cfg = load_params(params)
    print(yaml.safe_dump(cfg.model_dump(mode="json", by_alias=True), sort_keys=False), end="")


def profile_args(params: str, name: str, apply: bool = False) -> list[str]:
    """``-S key=value`` arguments of ``dvc exp run`` that apply profile ``name``.

    Values are JSON (a subset of YAML, which DVC parses) without spaces, so that
    ``dvc exp run $(actionrec profile tiny)`` survives shell word splitting. With
    ``apply``, the overrides are written into ``params`` instead (comments are lost: for
    scratch copies such as ``ci/tiny_pipeline.sh``'s, where ``dvc repro`` then runs them).
    """
    from actionrec.config import profile_overrides, read_raw, with_profile

    if apply:
        import yaml

        raw = read_raw(params)
        profile_overrides(raw, name)  # validates
        write_text(params, yaml.safe_dump(with_profile(raw, name), sort_keys=False))
        print(f"profile {name} written into {params}")
        return []
    args = []
    for key, value in profile_overrides(read_raw(params), name).items():
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        if any(ch.isspace() for ch in text):
            raise ActionrecError(f"profile {name}: {key} holds whitespace; cannot pass it as -S")
        args += ["-S", f"{key}={text}"]
    print(" ".join(args))
    return args


def track(model_dirs: list[str], tracking_uri: str | None = None) -> None:
    """``actionrec track``: log each trained model's pending run
    (:func:`actionrec.tracking.recovery.finish_run`)."""
    from actionrec.tracking import recovery

    for model_dir in model_dirs:
        result = recovery.finish_run(Path(model_dir), tracking_uri)
        print(f"track: {model_dir} logged as run {result['run_id']}"
              + (f", {result['registered_model']} version {result['registered_version']}"
                 if result["registered_model"] else ""))
        stage = f"train@{Path(model_dir).name}"
        print(f"track: `dvc commit {stage}` records the stage as done (no retraining)")


def mlflow_server(action: str, path: str | None, root: str, port: int, pg_port: int) -> None:
    """``actionrec mlflow-server``: start / stop / status / backup / restore."""
    from actionrec.server import TeamServer

    server = TeamServer(root, port=port, pg_port=pg_port)
    if action == "start":
        uri = server.start()
        print(f"mlflow-server: up at {uri} (PostgreSQL on 127.0.0.1:{pg_port}, state in "
              f"{server.root})\n  export MLFLOW_TRACKING_URI={uri}\n"
              f"sweeps (actionrec sweep ARCH --storage ...) share its database:\n"
              f"  export PGPASSFILE={server.pgpass_file.resolve()}\n"
              f"  --storage {server.optuna_storage}")
    elif action == "stop":
        server.stop()
        print(f"mlflow-server: stopped (data kept in {server.root})")
    elif action == "status":
        print(json.dumps(server.status(), indent=2))
    elif action == "backup":
        print(f"mlflow-server: backup in {server.backup(path)}")
    else:
        server.restore(path)
        print(f"mlflow-server: restored from {path}")
