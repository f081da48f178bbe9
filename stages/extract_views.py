"""DVC stage `extract_views` (dvc.yaml); `--help` lists its options.

The work lives in actionrec.pipeline.extract_views, which imports only what this stage runs.
"""

import _own_src  # noqa: F401  (this tree's src/ first on sys.path)

from actionrec.pipeline.extract_views import main

if __name__ == "__main__":
    main()
