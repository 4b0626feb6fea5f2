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
