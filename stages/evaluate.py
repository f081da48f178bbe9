"""DVC stage `evaluate` (dvc.yaml); `--help` lists its options.

The work lives in actionrec.pipeline.evaluate, which imports only what this stage runs.
"""

import _own_src  # noqa: F401  (this tree's src/ first on sys.path)

from actionrec.pipeline.evaluate import main

if __name__ == "__main__":
    main()
