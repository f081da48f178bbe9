"""Accuracy check on the larger synthetic profile: test top-1 and the time-reversed pair.

The synthetic actions ``sit_down`` and ``stand_up`` are exact time reverses of each
other (:mod:`actionrec.data.synthetic`): the same frames in opposite order. A model
that ignores frame order cannot tell them apart and is at 50 % on that pair; a
sequence model should be well above. Targets (issue 3): LRCN and ConvLSTM at least
90 % test top-1, and well above 50 % on the pair.

Run the profile in its scratch copy (the workspace keeps the real run), then read its
reports:

    make profile PROFILE=synthetic
    python benchmarks/accuracy.py --reports .profiles/synthetic/reports/evaluate

"pair accuracy" is top-1 accuracy over the test clips of the two classes (any of the
five classes may be predicted); "pair order accuracy" asks only which of the two is
more probable, i.e. whether the model got the direction of time right.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

PAIR = ("SitDown", "StandUp")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--reports", default="reports/evaluate",
                    help="the run's evaluate reports (<arch>/metrics.json)")
    ap.add_argument("--archs", nargs="+", default=["lrcn", "convlstm"])
    args = ap.parse_args()

    print("| architecture | test clips | top-1 accuracy | macro-F1 | epochs | pair clips | "
          "pair accuracy | pair order accuracy |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for arch in args.archs:
        root = Path(args.reports) / arch
        m = json.loads((root / "metrics.json").read_text())
        pred = pd.read_csv(root / "predictions.csv")
        classes = [c for c in pred.columns if c not in ("video", "actual")]
        top1 = pred[classes].idxmax(axis=1)
        pair = pred[pred["actual"].isin(PAIR)]
        if set(PAIR) <= set(classes) and len(pair):
            pair_acc = float((top1[pair.index] == pair["actual"]).mean())
            order = pair[list(PAIR)].idxmax(axis=1)
            order_acc = float((order == pair["actual"]).mean())
            pair_cells = f"{len(pair)} | {pair_acc:.3f} | {order_acc:.3f}"
        else:
            pair_cells = "0 | — | —"  # this run has not both classes of the pair
        print(f"| {arch} | {m['n_test']} | {m['top1_accuracy']:.3f} | {m['macro_f1']:.3f} | "
              f"{m['epochs_trained']} | {pair_cells} |")


if __name__ == "__main__":
    main()
