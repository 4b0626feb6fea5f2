"""Seccomp profiles in Docker's format (containers-common's /usr/share/containers/
seccomp.json, `--security-opt seccomp=PATH`) turned into runtime-spec `linux.seccomp`.

Docker's format is runtime-spec's plus conditions, resolved here for one container:

- `archMap`: the entry whose `architecture` is this host's native one gives the
  `architectures` list (it plus its `subArchitectures`); `architectures` given directly is
  kept as is (both at once is an error, as in Docker).
- each `syscalls[]` entry (`names`, or the old single `name`) is kept only if its
  `includes` hold (every listed cap in the container's bounding set, the host arch among
  `arches`, the running kernel >= `minKernel`) and its `excludes` do not (any listed cap
  in the bounding set, the host arch among `arches`, the kernel >= `minKernel`).
- `errnoRet` is kept; an entry with only the symbolic `errno` ("EPERM") gets its number.
- comments and unknown keys go.

A profile already in runtime-spec form passes through unchanged in meaning (it has no
conditions). Nothing is cached on disk; the default profile takes ~1 ms to load and
convert (the JSON is parsed with `sangja.jsonio`'s C scanner).
"""

from __future__ import annotations

import os

from ..errors import SangjaError

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    from typing import Any

# platform.machine() -> (Go's GOARCH, which profiles use in `arches`; libseccomp's name)
_ARCHES = {
    "x86_64": ("amd64", "SCMP_ARCH_X86_64"),
    "amd64": ("amd64", "SCMP_ARCH_X86_64"),
    "i386": ("386", "SCMP_ARCH_X86"),
    "i686": ("386", "SCMP_ARCH_X86"),
    "aarch64": ("arm64", "SCMP_ARCH_AARCH64"),
    "arm64": ("arm64", "SCMP_ARCH_AARCH64"),
    "armv7l": ("arm", "SCMP_ARCH_ARM"),
    "armv6l": ("arm", "SCMP_ARCH_ARM"),
    "ppc64le": ("ppc64le", "SCMP_ARCH_PPC64LE"),
    "ppc64": ("ppc64", "SCMP_ARCH_PPC64"),
    "s390x": ("s390x", "SCMP_ARCH_S390X"),
    "riscv64": ("riscv64", "SCMP_ARCH_RISCV64"),
    "mips64": ("mips64", "SCMP_ARCH_MIPS64"),
    "mips64el": ("mips64le", "SCMP_ARCH_MIPSEL64"),
    "loongarch64": ("loong64", "SCMP_ARCH_LOONGARCH64"),
}
# profiles spell 32-bit x86 both ways
_ARCH_ALIASES = {"386": ("386", "x86"), "x86": ("386", "x86")}

_SYSCALL_KEYS = ("names", "action", "errnoRet", "args")
_TOP_KEYS = ("defaultAction", "defaultErrnoRet", "flags", "listenerPath", "listenerMetadata")


class ProfileError(SangjaError):
    """A seccomp profile that cannot be read or used: exit code 125."""

    exit_code = 125
    engine_exit_code = 125


def host_arch() -> tuple[str, str]:
    """(Go arch name, libseccomp native arch name) of this machine."""
    machine = os.uname().machine
    try:
        return _ARCHES[machine]
    except KeyError:
        raise ProfileError(f"seccomp: unknown machine architecture {machine!r}") from None


def kernel_version() -> tuple[int, int]:
    return parse_version(os.uname().release) or (0, 0)


def parse_version(text: str) -> tuple[int, int] | None:
    """"6.1.0-13-amd64" -> (6, 1); "4.8" -> (4, 8); None if there is no major.minor."""
    parts = text.split(".")
    if len(parts) < 2:
        return None
    major = parts[0]
    minor = ""
    for c in parts[1]:
        if not c.isdigit():
            break
        minor += c
    if not major.isdigit() or not minor:
        return None
    return int(major), int(minor)


MAX_PROFILE_BYTES = 1 << 20  # Docker's default profile is ~20 kB


def load(path: str) -> dict:
    """Read a profile file (either format)."""
    from ..jsonio import loads

    try:
        with open(path, "rb") as f:
            data = f.read(MAX_PROFILE_BYTES + 1)
    except OSError as e:
        raise ProfileError(f"opening seccomp profile ({path}) failed: "
                           f"{e.strerror or e}") from None
    if len(data) > MAX_PROFILE_BYTES:
        raise ProfileError(f"seccomp profile ({path}) is larger than {MAX_PROFILE_BYTES} "
                           "bytes")
    try:
        profile = loads(data)
    except ValueError as e:
        raise ProfileError(f"decoding seccomp profile ({path}) failed: {e}") from None
    if not isinstance(profile, dict):
        raise ProfileError(f"decoding seccomp profile ({path}) failed: not a JSON object")
    return profile


def is_stored(setting: str | None) -> bool:
    """A `seccomp` option that needs no file: the default (None), "unconfined", or the
    profile itself (JSON text, as `stored` makes it)."""
    return setting is None or setting == "unconfined" or setting.startswith("{")


def stored(setting: str | None) -> str | None:
    """What a container keeps of `--security-opt seccomp=...`: a profile file becomes its
    content, as compact JSON (Docker's CLI does the same), read and checked once at create:
    later edits to the file, or its removal, never change the container. Other settings
    are returned as they are."""
    if is_stored(setting):
        return setting
    from ..jsonio import dumps

    assert setting is not None
    profile = load(setting)
    try:
        to_oci(profile, ())  # its structure, checked now rather than at every start
    except ProfileError as e:
        raise ProfileError(f"{e} (in {setting})") from None
    return dumps(profile)


# Docker's profile fields sangja reads -> the shape they must have
_STRS, _OBJ, _STR = "an array of strings", "an object", "a string"
_PROFILE_SHAPE = {"defaultAction": _STR, "architectures": _STRS, "archMap": "an array",
                  "syscalls": "an array", "flags": _STRS, "defaultErrno": _STR}
_ARCHMAP_SHAPE = {"architecture": _STR, "subArchitectures": _STRS}
_SYSCALL_SHAPE = {"names": _STRS, "name": _STR, "action": _STR, "args": "an array",
                  "includes": _OBJ, "excludes": _OBJ, "errno": _STR}
_CONDITION_SHAPE = {"arches": _STRS, "caps": _STRS}


def _fits(value, shape: str) -> bool:
    if shape == _STRS:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if shape == _STR:
        return isinstance(value, str)
    if shape == _OBJ:
        return isinstance(value, dict)
    return isinstance(value, list)  # "an array"


def _check_shape(d: dict, shape: dict[str, str], where: str) -> None:
    from ..oci.validate import kind_of

    for key, want in shape.items():
        v = d.get(key)
        if v is not None and not _fits(v, want):
            raise ProfileError(f"seccomp profile: {where}{key}: expected {want}, "
                               f"got {kind_of(v)}")


def check_shape(profile: dict) -> None:
    """The Docker-format fields to_oci reads have the types it needs (what it passes on
    in runtime-spec form, the runtime checks)."""
    _check_shape(profile, _PROFILE_SHAPE, "")
    for i, entry in enumerate(profile.get("archMap") or []):
        if isinstance(entry, dict):
            _check_shape(entry, _ARCHMAP_SHAPE, f"archMap[{i}].")
    for i, call in enumerate(profile.get("syscalls") or []):
        if not isinstance(call, dict):
            raise ProfileError(f"seccomp profile: syscalls[{i}] must be an object")
        _check_shape(call, _SYSCALL_SHAPE, f"syscalls[{i}].")
        for j, a in enumerate(call.get("args") or []):
            if not isinstance(a, dict):
                raise ProfileError(f"seccomp profile: syscalls[{i}].args[{j}] must be an "
                                   "object")
        for cond in ("includes", "excludes"):
            if call.get(cond):
                _check_shape(call[cond], _CONDITION_SHAPE, f"syscalls[{i}].{cond}.")


def to_oci(profile: dict, caps, *, arch: str | None = None,
           kernel: tuple[int, int] | None = None, native: str | None = None) -> dict | None:
    """runtime-spec `linux.seccomp` for a container whose bounding set is `caps`.

    `arch`/`native`/`kernel` default to this host's (Go arch name, libseccomp native arch,
    running kernel); tests pass others. None when the profile asks for nothing (no
    default action and no rules), which Docker treats as seccomp off."""
    if not isinstance(profile, dict):
        raise ProfileError("seccomp profile: not a JSON object")
    if not profile.get("defaultAction") and not profile.get("syscalls"):
        return None
    if not isinstance(profile.get("defaultAction"), str):
        raise ProfileError("seccomp profile: defaultAction is required")
    check_shape(profile)
    if arch is None or native is None:
        h_arch, h_native = host_arch()
        arch = arch or h_arch
        native = native or h_native
    if kernel is None:
        kernel = kernel_version()
    arch_names = _ARCH_ALIASES.get(arch, (arch,))
    caps = frozenset(caps)

    out: dict[str, Any] = {}
    for k in _TOP_KEYS:
        if profile.get(k) not in (None, "", [], {}):
            out[k] = profile[k]
    if "defaultErrnoRet" not in out and isinstance(profile.get("defaultErrno"), str):
        out["defaultErrnoRet"] = _errno_number(profile["defaultErrno"])

    arches = profile.get("architectures") or []
    arch_map = profile.get("archMap") or []
    if arches and arch_map:
        raise ProfileError("seccomp profile: 'architectures' and 'archMap' were both "
                           "specified, use either 'architectures' or 'archMap'")
    if arches:
        out["architectures"] = list(arches)
    for entry in arch_map:
        if isinstance(entry, dict) and entry.get("architecture") == native:
            out["architectures"] = [native, *(entry.get("subArchitectures") or [])]
            break

    rules: list[dict[str, Any]] = []
    for i, call in enumerate(profile.get("syscalls") or []):
        if not isinstance(call, dict):
            raise ProfileError(f"seccomp profile: syscalls[{i}] must be an object")
        names = call.get("names")
        if call.get("name"):
            if names:
                raise ProfileError(f"seccomp profile: syscalls[{i}] has both 'name' and "
                                   "'names', use either 'name' or 'names'")
            names = [call["name"]]
        if not _applies(call, i, caps, arch_names, kernel):
            continue
        rule: dict[str, Any] = {"names": list(names or [])}  # one JSON syscall rule
        for k in _SYSCALL_KEYS[1:]:
            v = call.get(k)
            if v not in (None, [], {}):
                rule[k] = v
        if "errnoRet" not in rule and isinstance(call.get("errno"), str) and call["errno"]:
            rule["errnoRet"] = _errno_number(call["errno"])
        if "args" in rule:
            rule["args"] = [{k: a[k] for k in ("index", "value", "valueTwo", "op") if k in a}
                            for a in rule["args"]]
        rules.append(rule)
    if rules:
        out["syscalls"] = rules
    return out


def _applies(call: dict, i: int, caps: frozenset, arch_names: tuple,
             kernel: tuple[int, int]) -> bool:
    exc = call.get("excludes") or {}
    inc = call.get("includes") or {}
    if exc:
        if any(a in arch_names for a in exc.get("arches") or ()):
            return False
        if any(c in caps for c in exc.get("caps") or ()):
            return False
        mk = exc.get("minKernel")
        if mk and kernel >= _min_kernel(mk, i):
            return False
    if inc:
        arches = inc.get("arches") or ()
        if arches and not any(a in arch_names for a in arches):
            return False
        if not all(c in caps for c in inc.get("caps") or ()):
            return False
        mk = inc.get("minKernel")
        if mk and kernel < _min_kernel(mk, i):
            return False
    return True


def _min_kernel(text, i: int) -> tuple[int, int]:
    v = parse_version(str(text))
    if v is None:
        raise ProfileError(f"seccomp profile: syscalls[{i}]: invalid minKernel {text!r} "
                           "(expected MAJOR.MINOR)")
    return v


def _errno_number(name: str) -> int:
    import errno

    n = getattr(errno, name, None)
    if not isinstance(n, int):
        raise ProfileError(f"seccomp profile: unknown errno {name!r}")
    return n


def for_container(setting: str | None, caps, *, privileged: bool = False) -> dict | None:
    """`linux.seccomp` for `--security-opt seccomp=...` (None = the default profile,
    "unconfined", the profile as JSON text (see `stored`), or a file path: records made
    before profiles were stored); None when the container runs without seccomp."""
    if privileged or setting == "unconfined":
        return None
    if setting is None:
        from .docker_defaults import DEFAULT_SECCOMP_PROFILE

        if not os.path.exists(DEFAULT_SECCOMP_PROFILE):
            raise ProfileError(f"the default seccomp profile {DEFAULT_SECCOMP_PROFILE} is "
                               "missing (apt-get install golang-github-containers-common), "
                               "or run with --security-opt seccomp=unconfined")
        setting = DEFAULT_SECCOMP_PROFILE
    if setting.startswith("{"):
        from ..jsonio import loads

        try:
            profile = loads(setting)
        except ValueError as e:
            raise ProfileError(f"the container's stored seccomp profile is damaged: {e}"
                               ) from None
        return to_oci(profile, caps)
    return to_oci(load(setting), caps)
