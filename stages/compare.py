"""DVC stage `compare` (dvc.yaml); `--help` lists its options.

The work lives in actionrec.pipeline.compare, which imports only what this stage runs.
"""

import _own_src  # noqa: F401  (this tree's src/ first on sys.path)

from actionrec.pipeline.compare import main

if __name__ == "__main__":
    main()
