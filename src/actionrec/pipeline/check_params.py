"""Stage ``check_params``: validate all of ``params.yaml`` before any other stage runs.

Every other stage depends on its output, ``data/params.ok``, so ``dvc repro`` and
``dvc exp run`` run it first; a bad value fails here, within a few seconds and before
TensorFlow is imported, while every output of the other stages is still in place (DVC
removes a stage's outputs only when it runs that stage). The output's content is the
same for any valid params, so a valid change reruns nothing through it: only the stages
that declare the changed key rerun.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from actionrec.config import load_params
from actionrec.pipeline import add_params_option, run_stage, stage_main

DESCRIPTION = ("Validate every setting of the params file (types, ranges, keys) before any "
               "stage runs; writes a constant marker that the other stages depend on.")

#: The marker's content: the same whatever the (valid) params are.
MARKER = "params.yaml: every setting validated (actionrec.pipeline.check_params)\n"


def check_params(params: str, out: str) -> None:
    """Validate ``params`` (:func:`actionrec.config.load_params`) and write ``out``.

    Raises:
        ConfigError: a setting is missing, of the wrong type, out of range or unknown;
            the message names each key (``data.top_n``) and how to undo an override.
    """
    load_params(params)
    from actionrec.io import write_text

    write_text(out, MARKER)
    print(f"check_params: {params} is valid")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The stage's options; sets ``run``."""
    add_params_option(p)
    p.add_argument("--out", default="data/params.ok",
                   help="the marker the other stages depend on (default: %(default)s)")
    p.set_defaults(run=lambda a: run_stage(check_params, params=a.params, out=a.out))


def main(argv: Sequence[str] | None = None) -> None:
    """``python stages/check_params.py [options]``."""
    stage_main("check-params", DESCRIPTION, add_arguments, argv)
