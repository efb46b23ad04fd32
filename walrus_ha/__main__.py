"""``python -m walrus_ha`` is the ``walrus`` command."""
import sys

from walrus_ha.tools.cli import main

if __name__ == "__main__":
    sys.exit(main())
