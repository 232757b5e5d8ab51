"""`python -m loratui` runs the CLI."""

import sys

from loratui.cli import main

sys.exit(main())
