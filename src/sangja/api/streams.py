"""Docker's stream framing: without a tty, stdout and stderr travel multiplexed in one
connection, each piece behind an 8-byte header (stream 0/1/2, three zero bytes, the
length, big-endian); with one, the raw bytes. And noticing a client that went away."""

from __future__ import annotations

import select
import socket  # noqa: F401 - the type in the signatures
import struct

STDIN, STDOUT, STDERR = 0, 1, 2
MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"


def frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(data)) + data


class FramedWriter:
    """A binary file object that writes one stream of a multiplexed reply (or the raw
    bytes with a tty) through `sink` (a socket's sendall or a ChunkedWriter's write)."""

    def __init__(self, sink, stream: int, tty: bool, *, per_line: bool = False):
        self.sink, self.stream, self.tty = sink, stream, tty
        self.per_line = per_line  # logs: one frame per line, as dockerd sends log entries

    def write(self, data: bytes) -> int:
        if not data:
            return 0
        if self.tty:
            self.sink(bytes(data))
        elif self.per_line:
            parts = bytes(data).split(b"\n")
            lines = [p + b"\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
            self.sink(b"".join(frame(self.stream, line) for line in lines))
        else:
            self.sink(frame(self.stream, bytes(data)))
        return len(data)

    def flush(self) -> None:
        pass


class Discard:
    """A binary file object that drops what is written (a stream the client did not ask
    for)."""

    def write(self, data) -> int:
        return len(data)

    def flush(self) -> None:
        pass


class ChunkSink:
    """A binary file object over a ChunkedWriter, for the engine's writers (tar, save)."""

    def __init__(self, out):
        self.out = out

    def write(self, data) -> int:
        return self.out.write(bytes(data))

    def flush(self) -> None:
        pass


def peer_gone(sock: socket.socket) -> bool:
    """Has the client closed its end (not merely its writing half)? Never blocks."""
    try:
        p = select.poll()
        p.register(sock, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
        for _, ev in p.poll(0):
            if ev & (select.POLLHUP | select.POLLERR):
                return True
            # POLLRDHUP alone: a half-close (docker's CloseWrite after stdin); a unix
            # socket whose peer closed it wholly reports POLLHUP
        return False
    except (OSError, ValueError):
        return True
