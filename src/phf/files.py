"""Output files and folders: each file written whole or not at all, a run's files replaced together, an output
folder owned by one process at a time, and what a reusable output was built from."""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from phf.errors import PHFError

BUILT_FROM = "built_from.json"  # what a reusable output was made from: reused only while that is unchanged
LOCK = ".phf.lock"  # in every folder a phf command writes: who holds it (the lock itself goes with its process)
STAGING = ".staging"


class FolderInUse(PHFError):
    """Another process is writing into the folder."""


def write_atomic(path: Path, data: str | bytes | Callable[[Path], None]) -> None:
    """Write `data` (text, bytes, or a function writing to the path it is given) to a temporary file beside `path`,
    then move it onto `path`: a reader, or a run killed meanwhile or stopped by a full disk, sees the old file or
    the new one, never a part."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if callable(data):
            data(tmp)
        elif isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def output_folder(folder: Path, what: str = "--output") -> Path:
    """`folder`, created if needed; a path that is a file, or a folder this user cannot write in, is said in one
    line before any work."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise PHFError(f"{what} {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PHFError(f"cannot create {what} {folder}: {e.strerror or e}") from None
    try:  # a file made and gone: permissions, a read-only file system, what root may not write (sysfs)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise PHFError(f"cannot write in {what} {folder}: {e.strerror or e}") from None
    return folder


_held: set[Path] = set()  # the folders this process holds: it may enter one again, its outer hold releases it


@contextmanager
def owned(folder: Path, what: str = "--output") -> Iterator[Path]:
    """Hold `folder` for this process while the block runs: another process (another `phf train` into the same
    run folder, a second `phf experiment` into the same folder) is refused, naming the holder. The lock is the
    kernel's (flock), so it goes with a killed process: no stale lock to delete by hand."""
    folder = output_folder(folder, what)
    key = folder.resolve()
    if key in _held:
        yield folder
        return
    path = folder / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise PHFError(f"cannot write in {what} {folder}: {e.strerror or e}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 4096).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise FolderInUse(f"{folder} is in use by {holder}: wait for it to finish, or use another folder") from None
    holder = (f"process {os.getpid()} on {socket.gethostname()} (`{shlex.join(['phf', *sys.argv[1:]])}`, "
              f"since {time.strftime('%Y-%m-%d %H:%M:%S')})")
    os.ftruncate(fd, 0)
    os.write(fd, holder.encode())
    _held.add(key)
    try:
        yield folder
    finally:
        _held.discard(key)
        os.ftruncate(fd, 0)
        os.close(fd)  # releases the lock


@contextmanager
def staged(folder: Path, names: Iterable[str]) -> Iterator[Path]:
    """A folder inside `folder` to write one run's outputs into; when the block ends without error, each file
    written there replaces its namesake in `folder`, and the files of an earlier run named in `names` that this
    run did not write are removed: the folder's files then all come from this run. When the block fails (a full
    disk, an interrupt), `folder` keeps the earlier run's files untouched. Hold the folder (`owned`) around it."""
    folder = Path(folder)
    stage = folder / STAGING
    shutil.rmtree(stage, ignore_errors=True)  # left by a run that was killed
    stage.mkdir(parents=True)
    try:
        yield stage
        written = {p.name for p in stage.iterdir()}
        for name in set(names) - written - {STAGING, LOCK}:
            if (folder / name).is_file():
                (folder / name).unlink()
        for name in written:
            os.replace(stage / name, folder / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _canonical(inputs: dict) -> dict:
    return json.loads(json.dumps(inputs, sort_keys=True, default=str))  # tuples as lists, paths as text


def write_built_from(folder: Path, inputs: dict) -> None:
    """Record in `folder` what it was built from (settings, the fingerprints of the model and data it read)."""
    write_atomic(Path(folder) / BUILT_FROM, json.dumps(_canonical(inputs), indent=1, sort_keys=True))


def is_built_from(folder: Path, inputs: dict) -> bool:
    """Whether `folder` records that it was built from `inputs`: the one test before any output is reused (an
    evaluation, a red team, a tokenizer, cached reference samples). Nothing recorded, or a record cut off: no."""
    try:
        return json.loads((Path(folder) / BUILT_FROM).read_text()) == _canonical(inputs)
    except (OSError, ValueError):
        return False
