"""The operator CLI of governed-runs. `python starter.py --help` lists the commands."""

import sys

from runtime.cli import admin, apikeys, candidates, inspect, reconcile, runs
from runtime.cli.main import main

COMMAND_MODULES = [runs, admin, candidates, inspect, apikeys, reconcile]

if __name__ == "__main__":
    sys.exit(main(COMMAND_MODULES))
