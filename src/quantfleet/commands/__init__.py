"""The bodies of the ``quantfleet`` commands, one module per group; ``cli.py`` registers
them. Heavy libraries are imported inside the command functions (``quantfleet --help`` stays
fast)."""

__all__: list[str] = []  # the modules are the public surface; nothing is re-exported
