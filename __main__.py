"""`python -m simsearch` is the `simsearch` command."""

import sys

from simsearch.cli import main

sys.exit(main())
