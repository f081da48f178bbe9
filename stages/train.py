"""DVC stage `train` (see dvc.yaml); `--help` lists its options.

The work lives in actionrec.pipeline; this file only forwards to `actionrec train`.
"""

import sys

from actionrec.cli import main

if __name__ == "__main__":
    main(["train", *sys.argv[1:]])
