"""The ``nni-asenas`` command (:func:`main`); one module per subcommand."""

from nni_asenas.cli.app import main

__all__ = ["main"]
