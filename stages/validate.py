"""DVC stage `validate` (see dvc.yaml); `--help` lists its options.

The work lives in actionrec.pipeline; this file only forwards to `actionrec validate`.
"""

import sys

from actionrec.cli import main

if __name__ == "__main__":
    main(["validate", *sys.argv[1:]])
