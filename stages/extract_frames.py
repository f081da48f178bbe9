"""DVC stage `extract_frames` (see dvc.yaml); `--help` lists its options.

The work lives in actionrec.pipeline; this file only forwards to `actionrec extract-frames`.
"""

import sys

from actionrec.cli import main

if __name__ == "__main__":
    main(["extract-frames", *sys.argv[1:]])
