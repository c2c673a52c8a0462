"""`python -m watchdog`: see watchdog.cli."""

import sys

from watchdog.cli import main

if __name__ == "__main__":
    sys.exit(main())
