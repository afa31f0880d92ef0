"""``python -m tests.store.moto_server``: moto's S3 server on 127.0.0.1 at a port the OS picks
when the server binds it (no port chosen beforehand that another process could take first).
Prints the port as its first line once it listens; serves until stdin closes or it is killed.
"""

from __future__ import annotations

import sys


def main() -> None:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()  # returns once the socket is bound and listening
    print(server.get_host_and_port()[1], flush=True)
    sys.stdin.read()  # the fixture closes our stdin (or terminates us) to stop
    server.stop()


if __name__ == "__main__":
    main()
