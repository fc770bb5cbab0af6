"""`python -m labeller`: the same as the `labeller` command."""

import sys

from labeller.cli.main import main

sys.exit(main())
