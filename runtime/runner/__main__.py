"""``python -m runtime.runner``: the command recorded in every expwatch experiment's resume spec."""

import sys

from runtime.runner.cli import main

if __name__ == "__main__":
    sys.exit(main())
