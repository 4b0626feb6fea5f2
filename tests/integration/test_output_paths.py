"""Output paths a user names (`save -o`, `export -o`) are written through, never replaced:
a device stays a device, a FIFO gets the archive, a symlink stays a link to the written
file, and a failed write leaves an existing file as it was (sangja.output.output_file).

Each test feeds the bad target from the outside and looks at what is on disk afterwards.
Run as root, a `save -o /dev/null` used to rename a regular file over the host's /dev/null;
that attack runs here in a private mount namespace with its own /dev."""

from __future__ import annotations

import os
import stat
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from sangja.output import OutputPathError, output_file


def _archive_names(path: Path) -> list[str]:
    with tarfile.open(path) as tf:
        return tf.getnames()


def _in_private_mounts(cli, script: str) -> subprocess.CompletedProcess:
    """`sh -c script` in a private mount namespace ($SANGJA is the engine command)."""
    env = dict(os.environ, SANGJA=" ".join(cli.argv()))
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-euc",
                           script], capture_output=True, text=True, env=env, timeout=120)


# ---------------------------------------------------------------------------- save -o


def test_save_to_dev_null_keeps_the_device(cli):
    """The reported attack, on the path /dev/null itself: a tmpfs on /dev with a test-made
    null device, in a mount namespace of its own (the host's /dev is never at risk)."""
    r = _in_private_mounts(cli, """
        mount -t tmpfs tmpfs /dev
        mknod -m 666 /dev/null c 1 3
        $SANGJA save -o /dev/null busybox
        stat -c %F /dev/null
        ls -A /dev
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["character special file", "null"], r.stdout
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_save_to_a_device_node_writes_through(cli, tmp_path):
    node = tmp_path / "null"
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    cli.ok("save", "-o", str(node), "busybox")
    st = os.lstat(node)
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert sorted(os.listdir(tmp_path)) == ["null"]  # no temp file beside it


def test_save_through_a_symlink_writes_the_target_and_keeps_the_link(cli, tmp_path):
    target = tmp_path / "archives" / "bb.tar"
    target.parent.mkdir()
    target.write_text("old content")
    os.chmod(target, 0o640)
    os.chown(target, 1234, 5678)
    link = tmp_path / "link.tar"
    link.symlink_to("archives/bb.tar")
    cli.ok("save", "-o", str(link), "busybox")
    assert os.readlink(link) == "archives/bb.tar"
    assert "manifest.json" in _archive_names(target)
    st = os.stat(target)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 1234, 5678)
    # a dangling link: the file it names is made, as the shell's `>` would
    dangling = tmp_path / "dangling.tar"
    dangling.symlink_to("archives/new.tar")
    cli.ok("save", "-o", str(dangling), "busybox")
    assert dangling.is_symlink() and "manifest.json" in _archive_names(dangling)
    assert sorted(os.listdir(target.parent)) == ["bb.tar", "new.tar"]


def test_save_to_a_fifo_feeds_its_reader_a_loadable_archive(cli, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = tmp_path / "got.tar"

    def read():
        with open(fifo, "rb") as f, open(got, "wb") as out:
            out.write(f.read())

    reader = threading.Thread(target=read)
    reader.start()
    cli.ok("save", "-o", str(fifo), "busybox")
    reader.join(60)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert "manifest.json" in _archive_names(got)
    out = cli.ok("load", "-i", str(got))
    assert "busybox" in out


def test_failed_save_leaves_the_existing_file(cli, tmp_path):
    out = tmp_path / "keep.tar"
    out.write_text("precious")
    cli.fails(1, "save", "-o", str(out), "no-such-image")  # docker's code for it
    assert out.read_text() == "precious"
    cli.fails(1, "save", "-o", str(tmp_path / "new.tar"), "no-such-image")
    assert sorted(os.listdir(tmp_path)) == ["keep.tar"]


def test_save_that_fails_while_writing_keeps_the_old_file(cli):
    """The disk fills up half-way (a 1 MiB tmpfs, the archive is larger): the old file is
    still whole and no temp file is left."""
    r = _in_private_mounts(cli, """
        d=$(mktemp -d)
        mount -t tmpfs -o size=1m tmpfs "$d"
        echo precious > "$d/out.tar"
        if $SANGJA save -o "$d/out.tar" busybox; then echo saved; fi
        cat "$d/out.tar"
        ls -A "$d"
        umount "$d"
        rmdir "$d"
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["precious", "out.tar"], r.stdout
    assert r.stderr.startswith("sangja: ") and len(r.stderr.splitlines()) == 1, r.stderr


@pytest.mark.parametrize("what", ["dir", "socket", "missing-dir"])
def test_save_refuses_what_it_cannot_write(cli, tmp_path, what):
    if what == "dir":
        path = tmp_path
    elif what == "socket":
        import socket

        path = tmp_path / "sock"
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        s.close()
    else:
        path = tmp_path / "nowhere" / "x.tar"
    line = cli.fails(125, "save", "-o", str(path), "busybox")
    assert str(path) in line
    if what == "socket":
        assert stat.S_ISSOCK(os.lstat(path).st_mode)


def test_save_to_dev_stdout_appends_to_the_callers_file(cli, tmp_path):
    """/dev/stdout is a /proc magic link to the caller's open file: written through, not
    renamed over (which replaced the /dev/stdout link itself with the archive, and left
    the shell's redirection empty). In a mount namespace with its own /dev, so that a
    regression cannot replace the host's /dev/stdout."""
    out = tmp_path / "out.tar"
    r = _in_private_mounts(cli, f"""
        mount -t tmpfs tmpfs /dev
        mknod -m 666 /dev/null c 1 3
        ln -s /proc/self/fd/1 /dev/stdout
        echo head > {out}
        $SANGJA save -o /dev/stdout busybox >> {out}
        stat -c %F /dev/stdout
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "symbolic link\n"
    data = out.read_bytes()
    assert data.startswith(b"head\n")
    (tmp_path / "a.tar").write_bytes(data[5:])
    assert "manifest.json" in _archive_names(tmp_path / "a.tar")


# ---------------------------------------------------------------------------- export -o


def test_export_writes_through_links_and_devices(cli, tmp_path):
    cid = cli.create("busybox", "true")
    node = tmp_path / "null"
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    cli.ok("export", "-o", str(node), cid)
    assert stat.S_ISCHR(os.lstat(node).st_mode)
    target = tmp_path / "rootfs.tar"
    target.write_text("old")
    link = tmp_path / "link"
    link.symlink_to(target)
    cli.ok("export", "-o", str(link), cid)
    assert link.is_symlink() and "bin/busybox" in _archive_names(target)
    out = tmp_path / "keep.tar"
    out.write_text("precious")
    cli.fails(None, "export", "-o", str(out), "no-such-container")
    assert out.read_text() == "precious"


# ---------------------------------------------------------------------------- the library


def test_output_file_failure_inside_the_block(tmp_path):
    """An exception while writing: the old file stays, nothing new is left; a new path is
    not created at all."""
    old = tmp_path / "old"
    old.write_text("old")
    with pytest.raises(RuntimeError), output_file(str(old)) as f:
        f.write(b"half")
        raise RuntimeError("boom")
    assert old.read_text() == "old"
    with pytest.raises(RuntimeError), output_file(str(tmp_path / "new")) as f:
        f.write(b"half")
        raise RuntimeError("boom")
    assert sorted(os.listdir(tmp_path)) == ["old"]
    with output_file(str(old)) as f:
        f.write(b"new")
    assert old.read_text() == "new"
    with pytest.raises(OutputPathError, match="directory"), output_file(str(tmp_path)):
        pass
