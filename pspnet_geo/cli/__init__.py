"""The ``pspnet-geo`` command line: a click group whose subcommands live one per module."""
