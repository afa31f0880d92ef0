"""The bodies of the ``quantfleet`` commands, one module per group; ``cli.py`` registers
them. Heavy libraries are imported inside the command functions (``quantfleet --help`` stays
fast)."""
