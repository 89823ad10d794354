"""The `switchyard` command (pyproject's [project.scripts]): parser, dispatch and the
one error boundary in parser; the commands in config_, model_, admin_ and run_commands."""

from extproc.cli.parser import main

__all__ = ["main"]
