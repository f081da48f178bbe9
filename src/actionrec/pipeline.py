"""The pipeline's stages as functions: what ``stages/*.py`` and ``actionrec <stage>`` call.

Each function reads ``params.yaml`` (validated before any work),
does its stage's work through :mod:`actionrec.data`, and writes its outputs
atomically. Paths are arguments so that ``dvc.yaml`` stays the one place that
names them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from actionrec.config import load_params
from actionrec.data.sources import LIST_DIR, VIDEO_DIR, prepare_raw
from actionrec.errors import ActionrecError, ValidationFailed
from actionrec.io import write_csv, write_json, write_text
from actionrec.runtime import print_runtime


def download(params: str, out: str, cache: str) -> Path:
    """Stage ``download``: fill ``out`` with the raw UCF101 layout of ``data.source``."""
    cfg = load_params(params)
    return prepare_raw(cfg.data, out, cache)


def subsample(params: str, raw: str, manifest: str, classes: str, report: str) -> pd.DataFrame:
    """Stage ``subsample``: pick classes and splits; write the manifest CSV and class list."""
    from actionrec.data.splits import build_manifest

    cfg = load_params(params).data
    table, chosen, missing = build_manifest(
        Path(raw) / LIST_DIR, Path(raw) / VIDEO_DIR, cfg.split, cfg.top_n, cfg.classes,
        cfg.val_fraction, cfg.val_seed, cfg.missing_videos,
    )
    write_csv(manifest, table)
    write_json(classes, chosen)
    counts = table.groupby(["class_name", "split"]).size().unstack(fill_value=0)
    write_json(report, {
        "split": cfg.split, "classes": chosen, "n_clips": len(table),
        "clips": {c: {k: int(v) for k, v in row.items()} for c, row in counts.iterrows()},
        "missing_videos_dropped": missing,
    })
    print(f"subsample: {len(chosen)} classes, {len(table)} clips "
          f"({', '.join(f'{s} {n}' for s, n in table['split'].value_counts().items())})")
    return table


def validate(params: str, raw: str, manifest: str, classes: str, probe: str,
             report_dir: str) -> None:
    """Stage ``validate``: probe every clip and run the Great Expectations suite.

    Raises:
        ValidationFailed: an expectation failed; ``<report_dir>/validation.md`` says which.
    """
    from actionrec.data.validation import validate_dataset

    cfg = load_params(params)
    passed, md = validate_dataset(
        pd.read_csv(manifest), json.loads(Path(classes).read_text()), Path(raw) / VIDEO_DIR,
        cfg.validate_, cfg.data.max_bad_fraction, Path(report_dir), Path(probe),
    )
    if not passed:
        raise ValidationFailed(f"data validation failed; read {md} for the failing checks and rows")
    print(f"validate: all expectations met; report in {md}")


def extract(params: str, raw: str, manifest: str, classes: str, probe: str, out: str,
            report: str) -> dict[str, Any]:
    """Stage ``extract_frames``: one frame store per image size the architectures need."""
    from actionrec.data.frames import extract_frames

    cfg = load_params(params)
    result = extract_frames(
        pd.read_csv(manifest), pd.read_csv(probe), json.loads(Path(classes).read_text()),
        Path(raw) / VIDEO_DIR, cfg.models.image_sizes(), cfg.frames, Path(out),
        cfg.data.max_bad_fraction, Path(report),
    )
    print(f"extract_frames: {result['n_extracted']} clips stored at sizes {result['sizes']}, "
          f"{result['n_excluded']} excluded (see {report})")
    return result


def features(params: str, arch: str, frames: str, out: str) -> dict[str, Any]:
    """Stage ``extract_features@<arch>``: cache the frozen backbone's features.

    An architecture trained from scratch has no backbone: its folder only gets a
    ``meta.json`` saying so, which keeps every ``train@<arch>`` stage's inputs alike.
    """
    from actionrec.features import extract_features

    cfg = load_params(params)
    s = cfg.models.get(arch)
    out_dir = Path(out)
    if s.trains_on_features:
        print_runtime(f"extract_features@{arch}")
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        meta = {"architecture": arch, "backbone": None,
                "note": "trains end to end on frames; no features to cache"}
        write_json(out_dir / "meta.json", meta)
        print(f"extract_features@{arch}: trains on frames, nothing to extract")
        return meta
    meta = extract_features(arch, s, Path(frames) / str(s.image_size), out_dir,
                            workers=cfg.train.loader_workers)
    print(f"extract_features@{arch}: {meta['backbone']} features (D={meta['feature_dim']}) "
          f"in {out_dir}")
    return meta


def train(params: str, arch: str, classes: str, frames: str, features: str, out: str,
          work: str, manifest: str | None = None) -> dict[str, Any]:
    """Stage ``train@<arch>``: fit, save ``model.keras``, log the run to MLflow (with the
    manifest's train and validation rows and the store it read as MLflow datasets)."""
    from actionrec import tracking
    from actionrec.training import train_architecture

    cfg = load_params(params)
    tracking.check_reachable(tracking.tracking_uri(cfg.mlflow.tracking_uri, Path(".")))
    print_runtime(f"train@{arch}")
    meta = train_architecture(arch, cfg, json.loads(Path(classes).read_text()), Path(frames),
                              Path(features), Path(out), Path(work) / arch,
                              manifest=Path(manifest) if manifest else None)
    print(f"train@{arch}: {meta['epochs_trained']} epochs, {meta['parameters']:,} parameters, "
          f"MLflow run {meta['mlflow_run_id']}")
    return meta


def evaluate(params: str, arch: str, model: str, frames: str, features: str,
             report: str, manifest: str | None = None) -> dict[str, Any]:
    """Stage ``evaluate@<arch>``: test metrics, plots; logged into the training run (with
    the manifest's test rows as its ``test`` dataset)."""
    from actionrec import tracking
    from actionrec.evaluation import evaluate_architecture

    cfg = load_params(params)
    e = cfg.evaluate
    report_dir = Path(report)
    run_file = Path(model) / "mlflow_run.json"
    if not run_file.exists():
        waiting = (Path(model) / tracking.PENDING_FILE).exists()
        raise ActionrecError(
            f"{model} has a trained model whose MLflow run is not logged yet: "
            f"`actionrec track {model}` logs it" if waiting else
            f"{model} holds no trained model: run `dvc repro train@{arch}` first")
    tracking.check_reachable(tracking.tracking_uri(cfg.mlflow.tracking_uri, Path(".")))
    print_runtime(f"evaluate@{arch}")
    metrics = evaluate_architecture(arch, Path(model), Path(frames), Path(features),
                                    report_dir, e.top_k, e.latency_warmup, e.latency_runs)
    run = json.loads(run_file.read_text())
    tracking.setup(tracking.tracking_uri(cfg.mlflow.tracking_uri, Path(".")),
                   run["experiment"], Path("."))
    tracking.log_test_results(run["run_id"], metrics, [
        report_dir / n for n in ("metrics.json", "per_class.json", "confusion.png",
                                 "curves.png", "predictions.csv")],
        manifest=Path(manifest) if manifest else None)
    print(f"evaluate@{arch}: top-1 {metrics['top1_accuracy']:.3f}, "
          f"macro-F1 {metrics['macro_f1']:.3f}, {metrics['latency_ms']:.1f} ms/clip")
    return metrics


def compare(params: str, reports: str, models: str = "models",
            out: str = "reports/comparison.md") -> str | None:
    """Stage ``compare``: ``out`` (``reports/comparison.md``, with the MLflow links), the
    chart beside it (``.png``), and the MLflow alias ``champion`` on the best architecture
    by macro-F1. ``reports`` holds ``<arch>/metrics.json`` (``reports/evaluate``).

    Returns:
        The champion's model URI (``models:/actionrec-<arch>@champion``), or ``None``
        when models are not registered (``mlflow.register: false``).
    """
    from actionrec import tracking
    from actionrec.config import ARCHITECTURES
    from actionrec.evaluation import compare as compare_reports

    cfg = load_params(params)
    runs = {a: json.loads((Path(models) / a / "mlflow_run.json").read_text())
            for a in ARCHITECTURES}
    store = tracking.tracking_uri(cfg.mlflow.tracking_uri, Path("."))
    tracking.check_reachable(store)
    links = tracking.comparison_links(store, cfg.mlflow.ui_url, runs)
    metrics = compare_reports(Path(reports), list(ARCHITECTURES), Path(out), links)
    best = max(metrics, key=lambda a: metrics[a]["macro_f1"])
    print(f"compare: best by macro-F1 is {best} ({metrics[best]['macro_f1']:.3f}); see {out}")
    if links:
        print(f"compare: the five runs side by side in MLflow: {links['compare']}")
    if not cfg.mlflow.register_models:
        return None
    import mlflow

    mlflow.set_tracking_uri(store)
    uri = tracking.set_champion(best, runs)
    if uri:
        print(f"compare: MLflow alias {uri} (actionrec predict --model {uri})")
    return uri


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
                     tol)
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


def predict(videos: list[str], model: str, top_k: int = 3, window: float | None = None,
            stride: float | None = None, fps: float | None = None, plot: str | None = None,
            as_json: bool = False, tracking_uri: str | None = None) -> list[Any]:
    """``actionrec predict``: top-k actions (or a timeline) of each video, printed.

    Every input is tried; bad ones are reported on stderr and in the JSON, never raised.

    Raises:
        PredictError: the model cannot be loaded.
        ActionrecError: after printing, when any input gave no answer (exit status 1).
    """
    from tabulate import tabulate

    from actionrec import predict as pr
    from actionrec import tracking

    print_runtime("predict")
    predictor = pr.load_predictor(model, tracking_uri or tracking.tracking_uri(None, Path(".")))
    paths, results = pr.find_videos(videos)
    results += [pr.predict_video(predictor, p, top_k, window, stride, fps) for p in paths]
    results.sort(key=lambda r: r.video)
    good = [r for r in results if r.ok]
    if as_json:
        print(json.dumps({"model": predictor.source,
                          "architecture": predictor.meta.get("architecture"),
                          "results": [r.to_json() for r in results]},
                         indent=2))
    else:
        rows = [[r.video if i == 0 else "", i + 1, a, f"{p:.3f}"]
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
    from actionrec.config import deep_merge, profile_overrides, read_raw

    if apply:
        import yaml

        raw = read_raw(params)
        profile_overrides(raw, name)  # validates
        merged = deep_merge(raw, {"profile": name, **(raw.get("profiles") or {}).get(name, {})})
        write_text(params, yaml.safe_dump(merged, sort_keys=False))
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
    """``actionrec track``: log each trained model's pending run (:func:`tracking.finish_run`)."""
    from actionrec import tracking

    for model_dir in model_dirs:
        result = tracking.finish_run(Path(model_dir), tracking_uri)
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
              f"{server.root})\n  export MLFLOW_TRACKING_URI={uri}")
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


def run_stage(fn: Callable[..., Any], **kwargs: Any) -> None:
    """Run a stage function; a known error prints its message and exits with status 1."""
    try:
        fn(**kwargs)
    except ActionrecError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
