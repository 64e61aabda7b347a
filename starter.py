"""The operator CLI of governed-runs. `python starter.py --help` lists the commands."""

from runtime.cli import admin, apikeys, bench, candidates, inspect, reconcile, runs
from runtime.cli.main import main
from runtime.process_exit import exit_process

COMMAND_MODULES = [runs, admin, candidates, inspect, apikeys, reconcile, bench]

if __name__ == "__main__":
    exit_process(main(COMMAND_MODULES))
