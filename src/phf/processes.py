"""Worker processes that do not outlive the process that started them."""

from __future__ import annotations

import os
import signal
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


def interrupt_once() -> None:
    """In a pool worker: the first SIGINT interrupts its task (KeyboardInterrupt), later ones are ignored. A
    Ctrl-C at the terminal reaches every process, and the parent passes it on too (for a SIGINT sent to it
    alone): the second must not break the worker while it hands back its interrupted task and exits."""
    def interrupt(signum, frame):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)


def init_worker(parent: int) -> None:
    """Initializer of a pool worker that runs a long job: `exit_with_parent` and `interrupt_once`."""
    exit_with_parent(parent)
    interrupt_once()
