"""``python -m asyncqueue.bench``: run the benchmark."""

from __future__ import annotations

import sys

from asyncqueue.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
