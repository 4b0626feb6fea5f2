"""sangja.engine.logs: json-file log reading (tail, since/until, timestamps, follow)."""

from __future__ import annotations

import io
import os
import threading
import time

import pytest

from sangja import jsonio
from sangja.engine import logs
from sangja.engine.logs import format_timestamp, parse_timestamp, read_logs

T0 = 1_700_000_000 * 10**9  # 2023-11-14T22:13:20Z


def line(text: str, stream: str = "stdout", ns: int = T0, t: str | None = None) -> bytes:
    obj = {"log": text, "stream": stream, "time": t or format_timestamp(ns)}
    return (jsonio.dumps(obj) + "\n").encode()


def write(path, *lines: bytes, mode: str = "wb") -> None:
    with open(path, mode) as f:
        for x in lines:
            f.write(x)


def run(path, **kw) -> tuple[bytes, bytes]:
    out, err = io.BytesIO(), io.BytesIO()
    read_logs(str(path), out, err, **kw)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def log(tmp_path):
    return tmp_path / "ctr.log"


# ---------------------------------------------------------------------------- timestamps


def test_format_timestamp_fixed_nine_digits():
    assert format_timestamp(T0) == "2023-11-14T22:13:20.000000000Z"
    assert format_timestamp(T0 + 123) == "2023-11-14T22:13:20.000000123Z"
    assert format_timestamp(0) == "1970-01-01T00:00:00.000000000Z"
    assert format_timestamp(951_782_400 * 10**9) == "2000-02-29T00:00:00.000000000Z"


@pytest.mark.parametrize("text,expected", [
    ("2023-11-14T22:13:20Z", 1_700_000_000.0),
    ("2023-11-14T22:13:20.5Z", 1_700_000_000.5),
    ("2023-11-14T22:13:20.123456789Z", 1_700_000_000.123456789),
    ("2023-11-15T00:13:20+02:00", 1_700_000_000.0),
    ("2023-11-14T20:13:20-02:00", 1_700_000_000.0),
    ("2023-11-14t22:13:20z", 1_700_000_000.0),
    ("1700000000", 1_700_000_000.0),
    ("1700000000.123", 1_700_000_000.123),
    ("1700000000.000000001", 1_700_000_000.000000001),
    ("0", 0.0),
    ("2000-02-29T00:00:00Z", 951_782_400.0),
])
def test_parse_absolute(text, expected):
    assert parse_timestamp(text) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("text,seconds", [
    ("42s", 42), ("10m", 600), ("1h30m", 5400), ("1.5h", 5400), ("300ms", 0.3),
    ("2h45m10s", 9910), ("1m0.5s", 60.5), ("-10m", -600), ("500us", 0.0005),
    ("1\u00b5s", 0.000001), ("7ns", 7e-9),
])
def test_parse_relative(text, seconds):
    now = 1_700_000_000.0
    assert parse_timestamp(text, now=now) == pytest.approx(now - seconds, abs=1e-6)


def test_parse_relative_defaults_to_now():
    assert abs(parse_timestamp("10m") - (time.time() - 600)) < 5


def test_parse_local_time_without_zone(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # UTC+9, no DST
    time.tzset()
    try:
        assert parse_timestamp("2023-11-15T07:13:20") == 1_700_000_000.0
        assert parse_timestamp("2023-11-15T07:13:20.25") == 1_700_000_000.25
        assert parse_timestamp("2023-11-15T07:13") == 1_700_000_000.0 - 20
        assert parse_timestamp("2023-11-15") == 1_700_000_000.0 - (7 * 3600 + 13 * 60 + 20)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


@pytest.mark.parametrize("bad", [
    "", "yesterday", "10x", "1h30", "2023-13-01", "2023-02-30", "2023-11-14T25:00:00Z",
    "2023-11-14T22:13:20+2", "1700000000.1234567890", "1.2.3", "h", "--5m", "2023-11-14 22:13",
])
def test_parse_rejects(bad):
    with pytest.raises(ValueError, match="invalid time|empty time"):
        parse_timestamp(bad)


# ---------------------------------------------------------------------------- plain reading


def test_streams_split_and_corrupt_lines_skipped(log):
    write(log, line("out1\n"), line("err1\n", "stderr"), b"{not json\n", b"\n",
          b'["a list"]\n', b'{"log": 5, "stream": "stdout", "time": "x"}\n',
          b'{"log": "no stream\\n", "time": "2023-11-14T22:13:20Z"}\n',
          line("bad utf8 \udcff\n"),
          b"[" * 100000 + b"\n",  # nesting deeper than the recursion limit
          line("out2\n"), line("err2\n", "stderr"))
    out, err = run(log)
    assert out == b"out1\nbad utf8 \xff\nout2\n"
    assert err == b"err1\nerr2\n"


def test_partial_last_line_not_emitted(log):
    whole = line("done\n")
    half = line("half written\n")[:20]
    write(log, whole, half)
    assert run(log) == (b"done\n", b"")
    assert run(log, tail=5) == (b"done\n", b"")


def test_split_long_line_parts_concatenate(log):
    write(log, line("a" * 10, ns=T0), line("b" * 10 + "\n", ns=T0 + 1))
    assert run(log)[0] == b"a" * 10 + b"b" * 10 + b"\n"


def test_missing_log_is_empty(log):
    assert run(log) == (b"", b"")
    assert run(log, tail=3) == (b"", b"")


def test_rotated_files_read_oldest_first(log):
    write(str(log) + ".2", line("one\n", ns=T0), line("two\n", ns=T0 + 1))
    write(str(log) + ".1", line("three\n", ns=T0 + 2))
    write(log, line("four\n", ns=T0 + 3), line("five\n", "stderr", ns=T0 + 4))
    write(str(log) + ".tmp", line("ignored\n"))
    out, err = run(log)
    assert out == b"one\ntwo\nthree\nfour\n" and err == b"five\n"


# ---------------------------------------------------------------------------- tail


def _numbered(log, n_rotated: int, per_file: int) -> list[bytes]:
    """Files .n_rotated ... .1 and the live one, lines 'L<i>' with increasing times."""
    expected = []
    i = 0
    for k in range(n_rotated, -1, -1):
        path = f"{log}.{k}" if k else str(log)
        chunk = []
        for _ in range(per_file):
            chunk.append(line(f"L{i}\n", ns=T0 + i * 10**9))
            expected.append(f"L{i}\n".encode())
            i += 1
        write(path, *chunk)
    return expected


def test_tail_across_rotated_files(log):
    expected = _numbered(log, 2, 3)
    assert run(log, tail=2)[0] == b"".join(expected[-2:])
    assert run(log, tail=5)[0] == b"".join(expected[-5:])
    assert run(log, tail=100)[0] == b"".join(expected)
    assert run(log, tail=0) == (b"", b"")
    assert run(log, tail=None)[0] == b"".join(expected)


def test_tail_counts_entries_of_both_streams(log):
    write(log, line("o1\n"), line("e1\n", "stderr"), line("o2\n"), b"garbage\n",
          line("e2\n", "stderr"))
    assert run(log, tail=3) == (b"o2\n", b"e1\ne2\n")


def test_tail_of_huge_file_reads_only_the_end(log, monkeypatch):
    block = b"".join(line(f"line {i:07d}\n", ns=T0 + i) for i in range(20000))
    with open(log, "wb") as f:
        for _ in range(50):  # ~1.4 million entries, ~90 MB
            f.write(block)
        f.write(line("last\n", ns=T0 + 10**12))
    assert os.path.getsize(log) > 50 << 20
    read = 0
    real = os.pread

    def counting(fd, n, off):
        nonlocal read
        data = real(fd, n, off)
        read += len(data)
        return data

    monkeypatch.setattr(logs.os, "pread", counting)
    t = time.monotonic()
    out, _ = run(log, tail=3)
    assert out == b"line 0019998\nline 0019999\nlast\n"
    assert read < 1 << 20
    assert time.monotonic() - t < 1.0


def test_tail_with_since_and_until(log):
    expected = _numbered(log, 1, 5)  # L0..L9 at T0 + i s
    since = (T0 + 3 * 10**9) / 1e9
    until = (T0 + 7 * 10**9) / 1e9
    assert run(log, tail=2, since=since, until=until)[0] == b"L6\nL7\n"
    assert run(log, tail=10, since=since, until=until)[0] == b"".join(expected[3:8])
    assert run(log, since=since, until=until)[0] == b"".join(expected[3:8])
    assert run(log, since=since)[0] == b"".join(expected[3:])
    assert run(log, until=until)[0] == b"".join(expected[:8])


def test_since_until_with_nanosecond_times_and_zones(log):
    write(log,
          line("a\n", t="2023-11-14T22:13:19.999999999Z"),
          line("b\n", t="2023-11-14T22:13:20.000000000Z"),
          line("c\n", t="2023-11-15T00:13:20.5+02:00"),  # 22:13:20.5Z, not the fixed form
          line("d\n", t="2023-11-14T22:13:21Z"),
          line("e\n", t="not a time"))
    s = parse_timestamp("2023-11-14T22:13:20Z")
    assert run(log, since=s)[0] == b"b\nc\nd\n"
    assert run(log, since=s, until=parse_timestamp("2023-11-14T22:13:20.5Z"))[0] == b"b\nc\n"
    assert run(log, until=parse_timestamp("2023-11-14T22:13:20Z"))[0] == b"a\nb\n"
    assert run(log)[0] == b"a\nb\nc\nd\ne\n"  # no filter: the time is not looked at


def test_timestamps_prefix(log):
    write(log, line("x\n", ns=T0 + 5), line("y\n", "stderr", t="2023-11-15T00:13:20.5+02:00"))
    out, err = run(log, timestamps=True)
    assert out == b"2023-11-14T22:13:20.000000005Z x\n"
    assert err == b"2023-11-14T22:13:20.500000000Z y\n"


def test_relative_since(log):
    now = time.time_ns()
    write(log, line("old\n", ns=now - 3600 * 10**9), line("mid\n", ns=now - 300 * 10**9),
          line("new\n", ns=now - 10**9))
    assert run(log, since=parse_timestamp("10m"))[0] == b"mid\nnew\n"
    assert run(log, since=parse_timestamp("1h30m"))[0] == b"old\nmid\nnew\n"
    assert run(log, since=parse_timestamp("42s"))[0] == b"new\n"
    assert run(log, until=parse_timestamp("1m"))[0] == b"old\nmid\n"


# ---------------------------------------------------------------------------- follow


class Writer:
    """Appends entries like the monitor does (whole lines, rotation by rename)."""

    def __init__(self, path):
        self.path = str(path)
        self.f = open(self.path, "ab", buffering=0)
        self.i = 0
        self.running = True
        self.expected: list[bytes] = []
        self.base = T0

    def emit(self, n: int = 1, stream: str = "stdout") -> None:
        for _ in range(n):
            text = f"msg {self.i}\n"
            self.f.write(line(text, stream, ns=self.base + self.i * 10**6))
            if stream == "stdout":
                self.expected.append(text.encode())
            self.i += 1

    def rotate(self, max_file: int = 3) -> None:
        self.f.close()
        for k in range(max_file - 1, 0, -1):
            src = f"{self.path}.{k - 1}" if k > 1 else self.path
            if os.path.exists(src):
                os.replace(src, f"{self.path}.{k}")
        self.f = open(self.path, "ab", buffering=0)


def follow(log, writer_fn, **kw) -> tuple[bytes, bytes, Writer]:
    w = Writer(log)
    box: dict = {}

    def reader():
        out, err = io.BytesIO(), io.BytesIO()
        try:
            read_logs(str(log), out, err, follow=True, is_running=lambda: w.running,
                      poll_interval=0.005, **kw)
        except BaseException as e:  # pragma: no cover - reported below
            box["error"] = e
        box["out"], box["err"] = out.getvalue(), err.getvalue()

    t = threading.Thread(target=reader)
    try:
        writer_fn(w, t)
    finally:
        w.running = False
        t.join(10)
        w.f.close()
    assert not t.is_alive(), "follow did not stop"
    assert "error" not in box, box.get("error")
    return box["out"], box["err"], w


def test_follow_through_rotations(log):
    def scenario(w: Writer, t: threading.Thread):
        w.emit(3)
        t.start()
        time.sleep(0.05)
        for _ in range(5):
            w.emit(4)
            time.sleep(0.01)
            w.rotate()
            w.emit(2)
            time.sleep(0.02)
        # several rotations between two polls: the middle files must still be read
        w.emit(1)
        w.rotate()
        w.emit(1)
        w.rotate()
        w.emit(2, "stderr")

    out, err, w = follow(log, scenario)
    assert out == b"".join(w.expected)
    assert err == b"".join(f"msg {i}\n".encode() for i in (w.i - 2, w.i - 1))


def test_follow_half_written_line_emitted_once_whole(log):
    def scenario(w: Writer, t: threading.Thread):
        t.start()
        data = line("slow line\n", ns=T0)
        w.f.write(data[:15])
        time.sleep(0.05)
        w.f.write(data[15:])
        w.expected.append(b"slow line\n")
        w.i += 1
        time.sleep(0.05)
        w.emit(1)

    out, _, w = follow(log, scenario)
    assert out == b"".join(w.expected)


def test_follow_tail_zero_shows_only_new(log):
    def scenario(w: Writer, t: threading.Thread):
        w.emit(5)
        del w.expected[:]
        t.start()
        time.sleep(0.05)
        w.emit(3)

    out, _, w = follow(log, scenario, tail=0)
    assert out == b"msg 5\nmsg 6\nmsg 7\n"


def test_follow_tail_then_new(log):
    def scenario(w: Writer, t: threading.Thread):
        w.emit(5)
        w.f.write(line("partial at start\n")[:10])  # completed after the reader started
        t.start()
        time.sleep(0.05)
        w.f.write(line("partial at start\n")[10:])
        w.emit(2)

    out, _, w = follow(log, scenario, tail=2)
    assert out == b"msg 3\nmsg 4\npartial at start\nmsg 5\nmsg 6\n"


def test_follow_reads_everything_written_before_stop(log):
    def scenario(w: Writer, t: threading.Thread):
        t.start()
        w.emit(200)
        w.rotate()
        w.emit(50)
        # stopped at once: follow must still deliver all 250 lines

    out, _, w = follow(log, scenario)
    assert out == b"".join(w.expected) and len(w.expected) == 250


def test_follow_waits_for_log_to_appear(tmp_path):
    log = tmp_path / "later" / "ctr.log"
    os.makedirs(log.parent)
    running = True
    out = io.BytesIO()

    def reader():
        read_logs(str(log), out, io.BytesIO(), follow=True, is_running=lambda: running,
                  poll_interval=0.005)

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.05)
    write(log, line("hello\n"))
    time.sleep(0.05)
    running = False
    t.join(5)
    assert not t.is_alive()
    assert out.getvalue() == b"hello\n"


def test_follow_truncated_in_place(log):
    def scenario(w: Writer, t: threading.Thread):
        w.emit(3)
        t.start()
        time.sleep(0.05)
        w.f.truncate(0)
        w.f.seek(0)
        time.sleep(0.05)
        w.emit(1)

    out, _, w = follow(log, scenario)
    assert out == b"msg 0\nmsg 1\nmsg 2\nmsg 3\n"


def test_follow_stops_at_until(log):
    base = time.time_ns() + 60 * 10**9  # entries from the future: the clock is not the stop

    def scenario(w: Writer, t: threading.Thread):
        w.base = base
        w.emit(2)
        t.start()
        time.sleep(0.05)
        w.emit(3)
        time.sleep(0.2)
        assert not t.is_alive()  # an entry after `until` ends the follow, running or not

    out, _, _ = follow(log, scenario, until=(base + 2 * 10**6 + 500_000) / 1e9)
    assert out == b"msg 0\nmsg 1\nmsg 2\n"


def test_follow_stops_when_clock_passes_until(log):
    now = time.time()
    out, err = io.BytesIO(), io.BytesIO()
    write(log, line("x\n", ns=int(now * 1e9) - 10**9))
    t = time.monotonic()
    read_logs(str(log), out, err, follow=True, until=now + 0.2, is_running=lambda: True,
              poll_interval=0.01)
    assert 0.1 < time.monotonic() - t < 3
    assert out.getvalue() == b"x\n"
