"""Layer `cli`: the `bear` command: argument handling, the commands, help, the schema page renderer."""

from bear.cli.main import main

__all__ = ["main"]
