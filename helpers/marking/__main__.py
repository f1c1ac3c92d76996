"""``python -m helpers.marking``: see helpers.marking.cli."""
import sys

from .cli import main

sys.exit(main())
