"""DVC stage `check_params` (dvc.yaml); `--help` lists its options.

The work lives in actionrec.pipeline.check_params, which imports only what this stage runs.
"""

import _own_src  # noqa: F401  (this tree's src/ first on sys.path)

from actionrec.pipeline.check_params import main

if __name__ == "__main__":
    main()
