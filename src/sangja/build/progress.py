"""What a build shows while it runs, as podman shows it: ``[1/2] STEP 3/5: RUN make``, the
RUN output as it comes, ``--> Using cache <id>`` for a step taken from the cache and
``--> <id>`` once a step's image exists. Quiet builds show nothing (the id at the end is
the CLI's). Lines from stages built at once are written whole, never interleaved inside
a line.

A caller that wants events rather than text (the Docker API's build stream) passes a
subclass: every event goes through `step`, `cached`, `made`, `line` and `output`, from
any of the build's threads (HeldProgress, below, is one such subclass)."""

from __future__ import annotations

from _thread import allocate_lock  # not `threading`: a cached build starts no thread

__all__ = ["Progress"]


class Progress:
    def __init__(self, out=None, quiet: bool = False) -> None:
        self.out = out  # a binary stream (stdout's buffer)
        self.quiet = quiet or out is None
        self.lock = allocate_lock()

    def line(self, text: str) -> None:
        if self.quiet:
            return
        with self.lock:
            self.out.write(text.encode("utf-8", "surrogateescape") + b"\n")
            self.out.flush()

    def step(self, label: str, n: int, total: int, text: str) -> None:
        self.line(f"{label}STEP {n}/{total}: {text}")

    def cached(self, image_id: str) -> None:
        self.line(f"--> Using cache {image_id.partition(':')[2]}")

    def made(self, image_id: str) -> None:
        self.line(f"--> {image_id.partition(':')[2][:12]}")

    def output(self, data: bytes) -> None:
        if self.quiet or not data:
            return
        with self.lock:
            self.out.write(data)
            self.out.flush()


class HeldProgress(Progress):
    """What a stage probed for cache hits would show, kept until it is done (`release`);
    dropped when the probe stops at a step that must do work (the stage runs again)."""

    def __init__(self) -> None:
        super().__init__(None)
        self.held: list[str] = []

    def line(self, text: str) -> None:
        self.held.append(text)

    def output(self, data: bytes) -> None:  # pragma: no cover - a probe runs nothing
        pass

    def release(self, to: Progress) -> None:
        for text in self.held:
            to.line(text)
        self.held = []


class OutputTail:
    """A RUN step's output: passed on to the progress, and its last lines kept for the
    error message of a failing step. A binary stream for AttachClient.relay."""

    def __init__(self, progress: Progress, keep: int = 8192):
        self.progress = progress
        self.keep = keep
        self.buf = b""

    def write(self, data: bytes) -> int:
        self.progress.output(data)
        self.buf = (self.buf + data)[-self.keep:]
        return len(data)

    def flush(self) -> None:
        pass

    def tail(self, lines: int = 3) -> str:
        text = self.buf.decode("utf-8", "replace").rstrip("\n")
        return " | ".join(line.strip() for line in text.splitlines()[-lines:] if line.strip())
