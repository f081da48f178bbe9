"""DVC stage `extract_features` (see dvc.yaml); `--help` lists its options.

The work lives in actionrec.pipeline; this file only forwards to `actionrec extract-features`.
"""

import sys

from actionrec.cli import main

if __name__ == "__main__":
    main(["extract-features", *sys.argv[1:]])
