"""The operator CLI of governed-runs. `python starter.py --help` lists the commands."""

import sys

from runtime.cli import admin, runs
from runtime.cli.main import main

COMMAND_MODULES = [runs, admin]

if __name__ == "__main__":
    sys.exit(main(COMMAND_MODULES))
