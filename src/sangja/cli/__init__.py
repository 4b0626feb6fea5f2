"""Command lines: argument parsing and output only."""


def stdout_gone() -> int:
    """The reader of our output went away (`... | head`): stop quietly, like a program
    killed by SIGPIPE, and keep Python from complaining when it flushes stdout at exit."""
    import os
    import sys

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError:
        pass
    return 141


def leave(code: int | None) -> None:
    """End the process with `code` once stdout and stderr are flushed, skipping the
    interpreter's teardown (about 5 ms of freeing modules at every command). Commands close
    the files and databases they open themselves; nothing registers atexit work."""
    import os
    import sys

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            if stream is sys.stdout and not code:
                code = stdout_gone()
    os._exit(code if isinstance(code, int) else (0 if code is None else 1))
