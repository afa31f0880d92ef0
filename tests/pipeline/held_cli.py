"""``python -m tests.pipeline.held_cli GATE STAGE ARGS...``: the quantfleet CLI (``ARGS``) with a
gate in front of one stage: when ``STAGE`` starts it writes the file ``GATE`` and blocks until
the process is killed, so a test can kill a run at a known point, whatever the machine's load.

Test-side only: the stage table is patched in this process; the source fingerprint (part of
every stage's cache key) is that of the unchanged package, so a later plain ``quantfleet run``
is served from the cache entries this one left.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path


def main(gate: Path, stage: str, argv: list[str]) -> None:
    from quantfleet.cli import main as cli
    from quantfleet.pipeline import stages

    def held(ctx, inputs):
        gate.write_text(str(os.getpid()))
        threading.Event().wait()  # until SIGKILL: the stage never finishes
        raise AssertionError("unreachable")

    stages.STAGES[stage] = held
    cli(argv)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3:])
