"""DVC stage `compare` (see dvc.yaml); `--help` lists its options.

The work lives in actionrec.pipeline; this file only forwards to `actionrec compare`.
"""

import sys

from actionrec.cli import main

if __name__ == "__main__":
    main(["compare", *sys.argv[1:]])
