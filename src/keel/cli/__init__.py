"""The ``keel`` command line: thin adapters over the workspace, one module per command group."""

from keel.cli._app import app, main

__all__ = ["app", "main"]
