"""DVC stage `subsample` (see dvc.yaml); `--help` lists its options.

The work lives in actionrec.pipeline; this file only forwards to `actionrec subsample`.
"""

import sys

from actionrec.cli import main

if __name__ == "__main__":
    main(["subsample", *sys.argv[1:]])
