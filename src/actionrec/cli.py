"""``actionrec``: the command line for people. Each stage's subcommand takes the same
options as its ``stages/<stage>.py`` (both come from :mod:`actionrec.pipeline`).

    actionrec download          # fill data/raw from data.source
    actionrec subsample         # manifest + class list
    actionrec validate          # Great Expectations suite over the manifest
    actionrec extract-frames    # frame store per image size
    actionrec extract-views     # the test clips' extra temporal views (evaluate.views)
    actionrec extract-features ARCH   # cached backbone features
    actionrec train ARCH        # fit one architecture, log it to MLflow
    actionrec evaluate ARCH     # test metrics and plots
    actionrec compare           # reports/comparison.md + .png
    actionrec synthesize DIR    # write a synthetic dataset anywhere (no params needed)
    actionrec params            # print the validated params as YAML
    actionrec profile tiny      # `-S` arguments: dvc exp run $(actionrec profile tiny)
    actionrec gate              # CI regression gate: reports/ against ci/baseline/
    actionrec predict VIDEO... --model M   # top-k actions, or a timeline with --window
    actionrec track models/ARCH # log a trained run the tracking server missed
    actionrec mlflow-server start|stop|status|backup DIR|restore DIR   # team server
    actionrec sweep ARCH --trials N   # hyper-parameter search; other machines join it
    actionrec protocol          # the three official splits as DVC experiments, their mean

Paths default to the ones in ``dvc.yaml``; ``--params`` picks another params file.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from actionrec import commands
from actionrec.pipeline import (
    add_architecture_options,
    add_params_option,
    check_params,
    compare,
    download,
    evaluate,
    extract_features,
    extract_frames,
    extract_views,
    prepare_process,
    run_stage,
    subsample,
    train,
    validate,
)

_params = add_params_option


def _stage(module, help_text: str):
    """The subcommand of a pipeline stage: the same options and function as its
    ``stages/<stage>.py`` (``module.add_arguments``, ``module.DESCRIPTION``)."""
    def add(sub) -> None:
        name = next(k for k, v in STAGE_COMMANDS.items() if v is module)
        module.add_arguments(sub.add_parser(name, help=help_text, description=module.DESCRIPTION))
    return add


#: ``actionrec <command>`` of each stage -> its module in :mod:`actionrec.pipeline`.
STAGE_COMMANDS = {"check-params": check_params, "download": download, "subsample": subsample,
                  "validate": validate, "extract-frames": extract_frames,
                  "extract-views": extract_views, "extract-features": extract_features,
                  "train": train, "evaluate": evaluate, "compare": compare}

_check_params = _stage(check_params, "validate every setting of the params file")
_download = _stage(download, "fill the raw folder from data.source")
_subsample = _stage(subsample, "select classes and splits into a manifest")
_validate = _stage(validate, "run the Great Expectations suite")
_extract_frames = _stage(extract_frames, "decode clips into fixed-length frame sequences")
_extract_views = _stage(extract_views, "store the test clips' extra temporal views")
_extract_features = _stage(extract_features, "cache a frozen backbone's features")
_train = _stage(train, "train one architecture (logs to MLflow)")
_evaluate = _stage(evaluate, "evaluate one architecture on the test split")
_compare = _stage(compare, "compare the architectures")


# One function per other command: its arguments, and the call they are passed to, side by
# side. Each adds its parser to ``sub`` and sets ``run`` (args -> None) as the default.

def _synthesize(sub) -> None:
    p = sub.add_parser("synthesize", help="write a synthetic dataset in the UCF101 layout",
                       description="Stick-figure action videos (see data.synthetic in "
                                   "params.yaml) written to DIR; uses the resolved params.")
    _params(p)
    p.add_argument("dir", help="output folder (gets UCF-101/ and ucfTrainTestlist/)")
    p.set_defaults(run=lambda a: run_stage(
        commands.synthesize, params=a.params, out=a.dir))


def _show_params(sub) -> None:
    p = sub.add_parser("params", help="print the validated params as YAML")
    _params(p)
    p.set_defaults(run=lambda a: run_stage(commands.show_params, params=a.params))


def _profile(sub) -> None:
    p = sub.add_parser(
        "profile", help="print the `dvc exp run` arguments of a profile",
        description="Print `-S key=value` arguments that apply a profile of params.yaml, "
                    "for use as `dvc exp run $(actionrec profile tiny)`.")
    _params(p)
    p.add_argument("name", help="profile name: a key of `profiles:` in params.yaml, or full")
    p.add_argument("--apply", action="store_true",
                   help="write the profile into the params file instead (for scratch copies: "
                        "its comments are lost)")
    p.set_defaults(run=lambda a: run_stage(
        commands.profile_args, params=a.params, name=a.name, apply=a.apply))


def _gate(sub) -> None:
    p = sub.add_parser(
        "gate", help="CI regression gate: test metrics against the committed baseline",
        description="Compare <reports>/<arch>/metrics.json with the baseline (gate.baseline "
                    "in params.yaml). Fails (exit 1) when an architecture or a gated metric "
                    "(gate.metrics) is missing, or a metric dropped by more than "
                    "gate.tolerance. Prints a Markdown table of every check.")
    _params(p)
    p.add_argument("--reports", default="reports/evaluate",
                   help="this run's <arch>/metrics.json (default: %(default)s)")
    p.add_argument("--baseline", help="baseline folder (default: gate.baseline)")
    p.add_argument("--tolerance", type=float,
                   help="largest allowed drop, for every architecture (default: "
                        "gate.tolerance, per architecture)")
    p.add_argument("--summary", metavar="FILE",
                   help="also append the table to FILE, e.g. $GITHUB_STEP_SUMMARY")
    p.add_argument("--update", action="store_true",
                   help="rewrite the baseline from --reports instead of checking")
    p.set_defaults(run=lambda a: run_stage(
        commands.gate, params=a.params, reports=a.reports, baseline=a.baseline,
        tolerance=a.tolerance, summary=a.summary, update=a.update))


def _predict(sub) -> None:
    p = sub.add_parser(
        "predict", help="recognise the actions in video files",
        description="Top-k actions of each video (a table, or --json), or with --window a\n"
                    "timeline of sliding windows. Frames are sampled and preprocessed as in\n"
                    "training, from the model's meta.json. With --window each window is\n"
                    "classified on its own, and the video's top-k is the mean of the\n"
                    "windows' probabilities. A clip (or window) with fewer frames than the\n"
                    "model's sequence length T is padded (or looped) as in training and\n"
                    "flagged: [short: n of T frames] in the table, \"padded\" in the JSON.\n"
                    "Bad files are reported and skipped; the exit status is 1 if any input\n"
                    "gave no answer.",
        epilog="examples:\n"
               "  actionrec predict clip.avi --model models/lrcn\n"
               "  actionrec predict videos/ --model models:/actionrec-lrcn@champion --json\n"
               "  actionrec predict long.mp4 --model models/lrcn --window 2 --stride 1 "
               "--plot timelines/",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("videos", nargs="+", metavar="VIDEO_OR_DIR",
                   help="video files, or folders searched recursively for videos")
    p.add_argument("--model", required=True, metavar="PATH_OR_URI",
                   help="models/<arch> folder, its model.keras, or an MLflow model URI "
                        "(runs:/<run id>/model, models:/actionrec-<arch>@champion)")
    p.add_argument("--top-k", type=_positive_int, default=3, metavar="K",
                   help="actions listed per video (default: %(default)s)")
    p.add_argument("--window", type=_positive_float, metavar="SECONDS",
                   help="sliding window length; gives a timeline per video")
    p.add_argument("--stride", type=_positive_float, metavar="SECONDS",
                   help="step between windows (default: the window length)")
    p.add_argument("--views", type=_positive_int, default=1, metavar="V",
                   help="temporal views of the clip (or of each window), their probabilities "
                        "averaged: evaluate.views' video-level answer (default: %(default)s)")
    p.add_argument("--fps", type=_positive_float,
                   help="frame rate to use instead of the container's (for a header with "
                        "none, or a wrong one); used for windows and times")
    p.add_argument("--plot", metavar="DIR",
                   help="with --window: write DIR/<video>.timeline.png per video")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument("--tracking-uri",
                   help="MLflow store for models:/ and runs:/ URIs (default: "
                        "$MLFLOW_TRACKING_URI, else mlflow.tracking_uri of --params, else "
                        "sqlite:///mlflow.db here)")
    p.add_argument("--params", default="params.yaml",
                   help="params file whose mlflow.tracking_uri is used, if it exists "
                        "(default: %(default)s)")

    def run(a: argparse.Namespace) -> None:
        for opt in ("stride", "plot"):
            if getattr(a, opt) is not None and a.window is None:
                p.error(f"--{opt} needs --window")
        run_stage(commands.predict, videos=a.videos, model=a.model, top_k=a.top_k,
                           window=a.window, stride=a.stride, fps=a.fps, plot=a.plot,
                           as_json=a.json, tracking_uri=a.tracking_uri, params=a.params,
                           views=a.views)

    p.set_defaults(run=run)


def _protocol(sub) -> None:
    p = sub.add_parser(
        "protocol", help="the official splits as DVC experiments; reports/protocol.md",
        description="Run the pipeline on each official split (protocol.splits, each\n"
                    "protocol.runs_per_split times with its own seed) as DVC experiments\n"
                    "(`dvc exp run --queue`, then `--run-all`), read their metrics through\n"
                    "dvc.api.exp_show, and write reports/protocol.md and .png: each split's\n"
                    "figures, their mean and standard deviation, the champion by the mean.\n"
                    "Experiments already run on these params are kept: a second call with\n"
                    "nothing changed trains nothing. In MLflow, one parent run `protocol`.",
        epilog="examples:\n"
               "  make protocol                        # the real run, all five architectures\n"
               "  actionrec protocol --architectures lrcn convlstm\n"
               "  dvc exp show --only-changed         # the experiments, side by side",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _params(p)
    from actionrec.config import ARCHITECTURES

    p.add_argument("--architectures", nargs="+", choices=ARCHITECTURES, metavar="ARCH",
                   help="run and report these only (default: all)")
    p.add_argument("--out", default="reports", help="report folder (default: %(default)s)")

    def run(a: argparse.Namespace) -> None:
        from actionrec.protocol import run_protocol

        run_stage(run_protocol, params_path=a.params, archs=a.architectures, out=Path(a.out))

    p.set_defaults(run=run)


def _track(sub) -> None:
    p = sub.add_parser(
        "track", help="log a trained model's run that the tracking server missed",
        description="When the MLflow tracking server went away during `train`, the stage "
                    "still writes models/<arch>/ completely and fails naming the server. Once "
                    "the server is back, this logs that run (params, every epoch, datasets, "
                    "the registered model) without training again. Then `dvc commit "
                    "train@<arch>` records the stage as done.")
    p.add_argument("model_dirs", nargs="+", metavar="MODEL_DIR", help="models/<arch> folders")
    p.add_argument("--tracking-uri",
                   help="log there instead of the server recorded at training time")
    p.set_defaults(run=lambda a: run_stage(
        commands.track, model_dirs=a.model_dirs, tracking_uri=a.tracking_uri))


def _mlflow_server(sub) -> None:
    p = sub.add_parser(
        "mlflow-server", help="a team's MLflow server: PostgreSQL store, served artifacts",
        description="Start, stop or back up `mlflow server` on 127.0.0.1 with a PostgreSQL "
                    "backend store (a cluster made by initdb under --dir, password "
                    "authentication, loopback only) and artifacts served by the server. "
                    "`make mlflow-server` / `make mlflow-stop` call start / stop.",
        epilog="then: export MLFLOW_TRACKING_URI=http://127.0.0.1:5000")
    p.add_argument("action", choices=["start", "stop", "status", "backup", "restore"])
    p.add_argument("path", nargs="?", help="backup / restore: the backup folder")
    p.add_argument("--dir", default=".mlflow-server",
                   help="state folder: database, artifacts, logs (default: %(default)s)")
    p.add_argument("--port", type=_positive_int, default=5000,
                   help="MLflow server port (default: %(default)s)")
    p.add_argument("--pg-port", type=_positive_int, default=5433,
                   help="PostgreSQL port on 127.0.0.1 (default: %(default)s)")

    def run(a: argparse.Namespace) -> None:
        if a.action in ("backup", "restore") and not a.path:
            p.error(f"{a.action} needs the backup folder")
        run_stage(commands.mlflow_server, action=a.action, path=a.path, root=a.dir,
                           port=a.port, pg_port=a.pg_port)

    p.set_defaults(run=run)


def _sweep(sub) -> None:
    p = sub.add_parser(
        "sweep", help="hyper-parameter search (Optuna) that more processes and machines join",
        description="Search the settings of models.ARCH listed in sweep.space (params.yaml)\n"
                    "with Optuna: N trials, each trained on the pipeline's stored frames or\n"
                    "features as train@ARCH does (an MLflow child run of the sweep's run),\n"
                    "pruned from its validation metric per epoch, evaluated on the test\n"
                    "split. The same command started on another machine, or in a second\n"
                    "process here, joins the study through the shared storage. At the end\n"
                    "the best trial is printed as the `dvc exp run -S ...` command that\n"
                    "reproduces it through the pipeline.",
        epilog="examples:\n"
               "  actionrec sweep lrcn --trials 20   # SQLite storage: this machine\n"
               "  export PGPASSFILE=$PWD/.mlflow-server/pgpass   # the team server's:\n"
               "  actionrec sweep lrcn --trials 20 --storage "
               "postgresql+psycopg://mlflow@127.0.0.1:5433/optuna",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_architecture_options(p)  # --params, ARCH, --frames, --features: as train@ARCH reads
    p.add_argument("--trials", type=_positive_int, required=True, metavar="N",
                   help="trials of the study, all workers together")
    p.add_argument("--storage", metavar="URL",
                   help="Optuna storage (SQLAlchemy URL) every worker uses (default: "
                        "sweep.storage, else sqlite:///sweeps/optuna.db)")
    p.add_argument("--study", metavar="NAME",
                   help="study name (default: sweep.study, else actionrec-ARCH-<profile>)")
    p.add_argument("--out", default="sweeps",
                   help="the trials' folders, <out>/<study>/trial-<n> (default: %(default)s)")

    def run(a: argparse.Namespace) -> None:
        from actionrec.sweep import run_sweep

        run_stage(run_sweep, params_path=a.params, arch=a.arch, n_trials=a.trials,
                  storage_url=a.storage, study_name=a.study, frames=a.frames,
                  features=a.features, out=a.out)

    p.set_defaults(run=run)


COMMANDS = (_check_params, _download, _subsample, _validate, _extract_frames, _extract_views,
            _extract_features,
            _train, _evaluate, _compare, _synthesize, _show_params, _profile, _gate, _predict,
            _track, _mlflow_server, _sweep, _protocol)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand (each sets ``run``: args -> None)."""
    parser = argparse.ArgumentParser(
        prog="actionrec",
        description="Human action recognition pipeline (UCF101, CNN-RNN, DVC + MLflow). "
                    "Normally run through `dvc repro`; each stage is also a subcommand.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``actionrec`` console script (``stages/*.py`` call the stage
    modules' own ``main``, which take the same options)."""
    prepare_process()  # stdout line-buffered, TensorFlow's C++ chatter out of stderr
    args = build_parser().parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
