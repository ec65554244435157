"""The one base class of phf's user-facing errors."""


class PHFError(Exception):
    """An error in what the user gave phf (a config, a corpus, a path, a flag, a model folder), phrased for them.

    The `phf` command prints its message as one line, `phf COMMAND: error: MESSAGE`, and exits with status 1.
    Any other exception is a bug, and keeps its traceback."""
