"""The ``asyncqueue`` command line (also ``python -m asyncqueue``), built on click.

One module per group of commands: ``jobs`` (enqueue and manage jobs), ``status`` (stats,
workers), ``worker`` (run a worker until a signal stops it), ``database`` (maintenance,
backup, restore). ``context`` holds what they share; ``render`` the text output.
"""

from asyncqueue.cli.app import cli, main

__all__ = ["cli", "main"]
