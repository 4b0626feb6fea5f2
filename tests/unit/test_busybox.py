"""Unit tests for sangja.image.busybox (no root needed)."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from sangja.image import busybox as bb


def _write_elf(path, *, static: bool, elf_class: int = 2):
    """A minimal little-endian ELF header with one program header (PT_LOAD or PT_INTERP)."""
    phoff = 64
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    header[4] = elf_class
    header[5] = 1  # little endian
    header[6] = 1
    header[32:40] = phoff.to_bytes(8, "little")
    header[54:56] = (56).to_bytes(2, "little")  # e_phentsize
    header[56:58] = (2).to_bytes(2, "little")  # e_phnum
    ph_load = (1).to_bytes(4, "little") + bytes(52)
    ph_second = (1 if static else 3).to_bytes(4, "little") + bytes(52)
    path.write_bytes(bytes(header) + ph_load + ph_second)
    return str(path)


def test_is_static_detects_pt_interp(tmp_path):
    assert bb._is_static(_write_elf(tmp_path / "static", static=True))
    assert not bb._is_static(_write_elf(tmp_path / "dynamic", static=False))


def test_is_static_rejects_non_elf_and_32bit(tmp_path):
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\necho hi\n" + " " * 64)
    assert not bb._is_static(str(script))
    assert not bb._is_static(_write_elf(tmp_path / "elf32", static=True, elf_class=1))


def test_is_static_on_real_binaries():
    if os.path.exists("/bin/sh"):
        assert not bb._is_static(os.path.realpath("/bin/sh"))  # dynamically linked on Debian


def test_find_static_busybox_none(monkeypatch, tmp_path):
    monkeypatch.setattr(bb, "BUSYBOX_CANDIDATES", (str(tmp_path / "nope"),))
    with pytest.raises(bb.BusyboxNotFound, match="busybox-static"):
        bb.find_static_busybox()


def test_find_static_busybox_skips_dynamic(monkeypatch, tmp_path):
    dyn = _write_elf(tmp_path / "dyn", static=False)
    sta = _write_elf(tmp_path / "sta", static=True)
    monkeypatch.setattr(bb, "BUSYBOX_CANDIDATES", (dyn, sta))
    assert bb.find_static_busybox() == sta


def _host_busybox():
    try:
        return bb.find_static_busybox()
    except bb.BusyboxNotFound as e:
        pytest.skip(str(e))


def test_build_rootfs(tmp_path):
    busybox = _host_busybox()
    dest = tmp_path / "rootfs"
    assert bb.build_busybox_rootfs(str(dest)) == str(dest)

    bin_busybox = dest / "bin" / "busybox"
    assert bin_busybox.is_file() and not bin_busybox.is_symlink()
    assert os.access(bin_busybox, os.X_OK)
    assert bb._is_static(str(bin_busybox))
    assert bin_busybox.stat().st_size == os.stat(busybox).st_size

    for applet in ("bin/sh", "bin/ls", "bin/cat", "bin/sleep"):
        link = dest / applet
        assert link.is_symlink(), applet
        assert os.readlink(link) == "/bin/busybox"

    for d in ("proc", "sys", "dev", "tmp", "etc", "root", "run"):
        assert (dest / d).is_dir(), d
    assert stat.S_IMODE((dest / "tmp").stat().st_mode) == 0o1777

    passwd = (dest / "etc" / "passwd").read_text().splitlines()
    assert passwd[0].startswith("root:x:0:0:")
    assert any(line.startswith("nobody:x:65534:65534:") for line in passwd)
    group = (dest / "etc" / "group").read_text()
    assert "root:x:0:" in group and "nogroup:x:65534:" in group and "tty:x:5:" in group


def test_every_listed_applet_is_linked(tmp_path):
    busybox = _host_busybox()
    dest = tmp_path / "rootfs"
    bb.build_busybox_rootfs(str(dest))
    applets = subprocess.run([busybox, "--list-full"], capture_output=True, text=True,
                             check=True).stdout.split()
    missing = [a for a in applets if not os.path.lexists(dest / a)]
    assert not missing


def test_build_rootfs_is_idempotent_and_keeps_edits(tmp_path):
    _host_busybox()
    dest = tmp_path / "rootfs"
    bb.build_busybox_rootfs(str(dest))
    (dest / "etc" / "passwd").write_text("custom:x:1000:1000::/:/bin/sh\n")
    bb.build_busybox_rootfs(str(dest))
    assert (dest / "etc" / "passwd").read_text() == "custom:x:1000:1000::/:/bin/sh\n"
    assert (dest / "bin" / "sh").is_symlink()


def test_build_rootfs_with_explicit_busybox(tmp_path):
    busybox = _host_busybox()
    dest = tmp_path / "rootfs"
    bb.build_busybox_rootfs(str(dest), busybox=busybox)
    out = subprocess.run([str(dest / "bin" / "busybox"), "echo", "works"], capture_output=True,
                         text=True, check=True).stdout
    assert out == "works\n"
