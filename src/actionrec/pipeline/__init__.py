"""The pipeline's stages, one module each: what ``stages/*.py`` and ``actionrec <stage>`` run.

Each module (``check_params``, ``download``, ``subsample``, ``validate``, ``extract_frames``,
``extract_views``, ``extract_features``, ``train``, ``evaluate``, ``compare``) holds its
stage's function,
its command-line options (``add_arguments``) and ``main``, the entry point that
``stages/<stage>.py`` calls. A stage module imports only what its stage runs, so that
``dvc.yaml`` can list exactly the source files each stage depends on
(``tests/test_stage_deps.py`` checks the list against the import graph).

Each stage function reads ``params.yaml`` (validated before any work, and before
TensorFlow is imported), does its work through :mod:`actionrec.data` and the model
code, and writes its outputs atomically. Paths are arguments so that ``dvc.yaml``
stays the one place that names them.

This module is imported by every stage: it stays small and imports no heavy library.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import sys
from collections.abc import Callable, Sequence
from typing import Any

from actionrec.errors import ActionrecError


def add_params_option(p: argparse.ArgumentParser) -> None:
    """``--params`` (default ``params.yaml``): the params file a command reads."""
    p.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")


def add_extraction_options(p: argparse.ArgumentParser, extract: Callable[..., Any], out: str,
                           report: str) -> None:
    """The options of a stage that decodes the manifest's clips (``extract_frames``,
    ``extract_views``): ``--params``, the inputs, ``--out`` and ``--report`` (defaults
    ``out`` and ``report``); sets ``run`` to ``extract`` with them."""
    add_params_option(p)
    p.add_argument("--raw", default="data/raw")
    p.add_argument("--manifest", default="data/manifest.csv")
    p.add_argument("--classes", default="data/classes.json")
    p.add_argument("--probe", default="data/probe.csv")
    p.add_argument("--out", default=out)
    p.add_argument("--report", default=report)
    p.set_defaults(run=lambda a: run_stage(
        extract, params=a.params, raw=a.raw, manifest=a.manifest, classes=a.classes,
        probe=a.probe, out=a.out, report=a.report))


def add_architecture_options(p: argparse.ArgumentParser, features: bool = True) -> None:
    """The options of a per-architecture stage: ``--params``, ``ARCH`` (a section of
    ``models:``), ``--frames`` (the frame store root) and, with ``features``,
    ``--features`` (the cached features root)."""
    from actionrec.config import ARCHITECTURES

    add_params_option(p)
    p.add_argument("arch", choices=ARCHITECTURES)
    p.add_argument("--frames", default="data/frames",
                   help="the frame store; its <image_size>/ folder is read (default: %(default)s)")
    if features:
        p.add_argument("--features", default="data/features",
                       help="cached backbone features, <arch>/ (default: %(default)s)")


def run_stage(fn: Callable[..., Any], **kwargs: Any) -> None:
    """Run a stage or command function; a known error prints its message and exits 1.

    Raises:
        SystemExit: status 1 after an :class:`~actionrec.errors.ActionrecError`, whose
            message (what was wrong, how to fix it) goes to stderr without a traceback.
    """
    try:
        fn(**kwargs)
    except ActionrecError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None


def prepare_process() -> None:
    """What every entry point does first: stdout line-buffered (under ``dvc repro`` it is
    a pipe, and each epoch should show as it ends), TensorFlow's native log noise
    filtered out of stderr (:mod:`actionrec.native_logs`), and no garbage-collector passes
    at exit (:func:`skip_collection_at_exit`, registered with ``atexit``)."""
    from actionrec import native_logs

    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    native_logs.filter_process_stderr()
    atexit.register(skip_collection_at_exit)


def stage_main(command: str, description: str,
               add_arguments: Callable[[argparse.ArgumentParser], None],
               argv: Sequence[str] | None = None) -> None:
    """The entry point of one stage: parse ``argv`` with the stage's own options and run it
    (:func:`run_stage`). ``python stages/<stage>.py --help`` prints them.

    ``add_arguments`` adds the options and sets ``run`` (args -> None) as the default.
    """
    prepare_process()
    parser = argparse.ArgumentParser(prog=f"actionrec {command}", description=description)
    add_arguments(parser)
    args = parser.parse_args(argv)
    args.run(args)


def skip_collection_at_exit() -> None:
    """Spare the interpreter's exit the garbage collector's passes over what the process
    built: ``gc.freeze()`` moves every object to the permanent generation, which no
    collection scans (Python docs, ``gc.freeze``). Objects are still freed by their reference
    counts and every ``atexit`` handler runs as before; only cycles are left to the end of
    the process. :func:`prepare_process` registers it with ``atexit``: it runs at the
    exit of every entry point, whatever ends it, before the interpreter's own collection
    passes (which follow every ``atexit`` handler). Measured on train@lrcn of the sample
    profile (2 cores): 2.1 s between the last ``atexit`` handler and the process's end
    without it, 0.2 s with it (12.4 s -> 11.2 s wall per run), at every stage and command
    that has used TensorFlow, Keras and MLflow.
    """
    gc.freeze()
