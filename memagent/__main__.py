import sys

from memagent.cli import main

sys.exit(main())
