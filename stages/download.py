"""DVC stage `download` (see dvc.yaml); `--help` lists its options.

The work lives in actionrec.pipeline; this file only forwards to `actionrec download`.
"""

import sys

from actionrec.cli import main

if __name__ == "__main__":
    main(["download", *sys.argv[1:]])
