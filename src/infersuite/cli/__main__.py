"""`python -m infersuite.cli` runs the `infersuite` command."""

import sys

from infersuite.cli import main

sys.exit(main())
