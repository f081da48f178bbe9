"""Put this tree's ``src/`` first on ``sys.path``: each ``stages/<stage>.py`` imports it
before ``actionrec``, so a stage runs the code of the tree it is in (the code DVC hashed
for ``dvc.lock``), not the checkout that an editable install points at. That matters in
every copy of the tree: ``dvc exp run --temp`` and ``--queue`` run in temporary copies,
``ci/tiny_pipeline.sh`` in ``.ci-work/``, ``make profile`` in ``.profiles/<name>/``."""

import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
if sys.path[:1] != [str(SRC)]:
    sys.path.insert(0, str(SRC))
