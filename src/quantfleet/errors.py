"""Errors quantfleet raises on bad input or failed work.

Hierarchy::

    QuantfleetError (ValueError)        bad values; the message names the thing, the place and the fix
    ├── DataError                       a data source that cannot be loaded or fails validation
    ├── StrategyError                   unknown strategy, parameter, or an invalid parameter value
    ├── ConfigError                     a config file or CLI flag with a bad value
    ├── ExecutionError                  a compute backend that cannot run the work
    └── StoreError                      an artifact store that cannot read or write
        └── CorruptArtifactError        an artifact whose bytes do not match its hash

Wrong *types* raise the built-in ``TypeError``. The CLI turns any ``QuantfleetError``
into one line on stderr and exit code 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "ConfigError",
    "CorruptArtifactError",
    "DataError",
    "ExecutionError",
    "QuantfleetError",
    "StoreError",
    "StrategyError",
    "did_you_mean",
    "printable",
]


class QuantfleetError(ValueError):
    """Base class: a bad value somewhere in quantfleet's input."""


class DataError(QuantfleetError):
    """A data source that cannot be loaded or fails validation."""


class StrategyError(QuantfleetError):
    """An unknown strategy or parameter, or an invalid parameter value."""


class ConfigError(QuantfleetError):
    """A configuration file or flag with a bad value."""


class ExecutionError(QuantfleetError):
    """A compute backend that cannot run the requested work."""


class StoreError(QuantfleetError):
    """An artifact store that cannot read or write."""


class CorruptArtifactError(StoreError):
    """An artifact whose bytes do not hash to its address."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"


def printable(value: object, limit: int = 60) -> str:
    """``value`` as text safe to print on one terminal line: control characters, invalid
    bytes and other unprintable characters become ``\\xNN``-style escapes, and text longer
    than ``limit`` characters is cut with ``...``. Error messages quote user input through it
    so that a binary file never puts raw bytes on the terminal."""
    if isinstance(value, (bytes, bytearray)):
        text = bytes(value).decode("utf-8", errors="backslashreplace")
    else:
        text = str(value)
    out = "".join(c if c.isprintable() else (repr(c)[1:-1] if ord(c) < 0x10000 else "?")
                  for c in text)
    return out if len(out) <= limit else out[:limit] + "..."
