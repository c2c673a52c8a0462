import sys

from qqworker.cli import main

sys.exit(main())
