"""Serve Le Stats Sportif: `python run.py --help` lists the options."""

from lestats.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
