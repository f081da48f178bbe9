"""DVC stage `evaluate` (see dvc.yaml); `--help` lists its options.

The work lives in actionrec.pipeline; this file only forwards to `actionrec evaluate`.
"""

import sys

from actionrec.cli import main

if __name__ == "__main__":
    main(["evaluate", *sys.argv[1:]])
