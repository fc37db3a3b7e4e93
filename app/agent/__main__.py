"""``python -m app.agent`` and the ``corral-agent`` console script."""

import sys

from app.agent.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
