"""`python -m vla_eval.cli ...`: the same as the `vla-eval` console script."""

import sys

from vla_eval.cli import main

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
