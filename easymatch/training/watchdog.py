"""python -m easymatch.training.watchdog PID TIMEOUT: ends a task stuck
waiting for its peers (see strategies.multi_worker_strategy).

Waits up to TIMEOUT seconds for its standard input to close; if it does
not, prints which peer of TF_CONFIG does not answer and kills PID.
"""

from __future__ import annotations

import os
import select
import signal
import sys

from easymatch.training.cluster import read_tf_config, unreachable_peer


def main(pid: int, timeout: float) -> None:
    ready, _, _ = select.select([sys.stdin], [], [], timeout)
    if ready:
        return  # closed: the wait is over (or the task ended)
    missing = unreachable_peer(read_tf_config()) or "a peer"
    print(
        f"easymatch: error: TF_CONFIG: {missing} unreachable after "
        f"{timeout:g} s",
        file=sys.stderr,
        flush=True,
    )
    os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    main(int(sys.argv[1]), float(sys.argv[2]))
