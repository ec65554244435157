"""Worker processes that do not outlive the process that started them."""

from __future__ import annotations

import os
import threading
import time


def exit_with_parent(parent: int) -> None:
    """Initializer of a pool worker: exit as soon as `parent` (the pid that started the pool) is gone. A parent
    killed by SIGKILL or SIGTERM gets no chance to stop its pool; without this its workers live on, each holding
    its models in memory, and with them multiprocessing's resource tracker."""
    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
