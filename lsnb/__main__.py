"""``python -m lsnb``: the same command line as the ``lsnb`` console script."""
import sys

from .cli import main

sys.exit(main())
