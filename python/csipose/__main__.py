import sys

from csipose.cli import main

sys.exit(main())
