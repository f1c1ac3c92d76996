"""``python -m helpers.assignments``: see ``helpers.assignments.cli``."""
import sys

from .cli import main

sys.exit(main())
