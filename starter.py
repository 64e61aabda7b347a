"""The operator CLI of governed-runs. `python starter.py --help` lists the commands."""

from cli.main import main
from runtime.process_exit import exit_process

if __name__ == "__main__":
    exit_process(main())
