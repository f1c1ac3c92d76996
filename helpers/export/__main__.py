"""``python -m helpers.export``: see ``helpers.export.cli``."""
import sys

from .cli import main

sys.exit(main())
