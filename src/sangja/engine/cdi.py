"""CDI (the Container Device Interface): `--device vendor.com/class=name` and `--gpus`
resolved from the spec files a vendor's tool writes (/etc/cdi, /var/run/cdi; the later
directory wins), and their containerEdits applied to a container's OCI config: device
nodes (with their cgroup allow rules), environment variables, mounts and hooks.

The spec files are the host administrator's (root's), read as JSON, or as YAML when
PyYAML is installed. One that is not root's (or the engine user's), that anyone may
write, that is not a regular file, or a spec directory that cannot be read, fails the
command: the specs name host commands (hooks) and devices, and a check that cannot
trust its data fails closed. Where the edits land inside the container is the runtime's
business: device nodes and mount targets are resolved inside the container's root
(sangja.linux.paths), whatever links the image planted on the way.

`SANGJA_CDI_SPEC_DIRS` (colon-separated) replaces the two directories (podman's
`cdi_spec_dirs`)."""

from __future__ import annotations

import os
import stat

from ..errors import SangjaError

DEFAULT_DIRS = ("/etc/cdi", "/var/run/cdi")
_MAX_SPEC = 4 << 20


class CDIError(SangjaError):
    exit_code = 125
    engine_exit_code = 125


def spec_dirs() -> list[str]:
    env = os.environ.get("SANGJA_CDI_SPEC_DIRS")
    return [d for d in env.split(":") if d] if env else list(DEFAULT_DIRS)


def _read_spec(path: str) -> bytes | None:
    """The bytes of the spec file `path`, or None for a directory (skipped, as the CDI
    library skips them). Fails closed (CDIError) on what cannot be trusted or read: a
    FIFO, device node or dangling link (never opened for data: a FIFO would block, a device
    would run its driver), a file that another user owns or that anyone may write (its
    hooks run as root on the host, its devices are opened to the container)."""
    from ..linux.paths import reopen_regular

    try:
        pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError as e:
        raise CDIError(f"CDI spec {path}: {e.strerror}") from None
    try:
        st = os.fstat(pfd)
        if stat.S_ISDIR(st.st_mode):
            return None
        if not stat.S_ISREG(st.st_mode):
            raise CDIError(f"CDI spec {path}: not a regular file")
        if st.st_uid not in (0, os.geteuid()):
            raise CDIError(f"CDI spec {path}: owned by uid {st.st_uid}, not by root")
        if st.st_mode & stat.S_IWOTH:
            raise CDIError(f"CDI spec {path}: writable by everyone (mode "
                           f"{stat.S_IMODE(st.st_mode):o})")
        try:
            fd = reopen_regular(pfd)
        except OSError as e:
            raise CDIError(f"CDI spec {path}: {e.strerror}") from None
    finally:
        os.close(pfd)
    with os.fdopen(fd, "rb") as f:
        try:
            return f.read(_MAX_SPEC + 1)
        except OSError as e:
            raise CDIError(f"CDI spec {path}: {e.strerror}") from None


def _load(path: str, data: bytes) -> dict:
    if len(data) > _MAX_SPEC:
        raise CDIError(f"CDI spec {path}: larger than 4 MiB")
    from ..jsonio import JSONError, loads

    try:
        doc = loads(data, source=path)
    except JSONError as e:
        if not path.endswith((".yaml", ".yml")):
            raise CDIError(f"CDI spec {e}") from None
        try:
            import yaml  # only for YAML specs
        except ImportError:
            raise CDIError(f"CDI spec {path} is YAML: install PyYAML (python3-yaml) to read "
                           "it, or write the spec as JSON") from None
        try:
            doc = yaml.safe_load(data)
        except yaml.YAMLError as y:
            raise CDIError(f"CDI spec {path}: {y}".replace("\n", " ")) from None
        except RecursionError:
            raise CDIError(f"CDI spec {path}: nested too deeply") from None
    if not isinstance(doc, dict):
        raise CDIError(f"CDI spec {path}: expected an object")
    return doc


def _specs() -> list[tuple[str, dict]]:
    out = []
    for d in spec_dirs():
        try:
            names = sorted(os.listdir(d))
        except FileNotFoundError:
            continue  # no such directory: no specs there
        except OSError as e:  # a directory that cannot be read fails closed
            raise CDIError(f"CDI spec directory {d}: {e.strerror}") from None
        for name in names:
            if name.endswith((".json", ".yaml", ".yml")):
                path = os.path.join(d, name)
                data = _read_spec(path)
                if data is not None:
                    out.append((path, _load(path, data)))
    return out


def _edits(where: str, value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CDIError(f"{where}: containerEdits must be an object")
    return value


def resolve(names: list[str]) -> list[tuple[str, dict]]:
    """The containerEdits for each device name, the spec's own (kind-wide) edits first:
    [(where, edits)]. An unknown name is one CDIError naming it."""
    if not names:
        return []
    found: dict[str, tuple[str, dict, dict]] = {}
    for path, doc in _specs():
        kind = doc.get("kind")
        if not isinstance(kind, str):
            raise CDIError(f"CDI spec {path}: kind must be a string (vendor.com/class)")
        devices = doc.get("devices") or []
        if not isinstance(devices, list):
            raise CDIError(f"CDI spec {path}: devices must be a list")
        common = _edits(f"CDI spec {path}", doc.get("containerEdits"))
        for i, dev in enumerate(devices):
            if not isinstance(dev, dict) or not isinstance(dev.get("name"), str):
                raise CDIError(f"CDI spec {path}: devices[{i}].name must be a string")
            found[f"{kind}={dev['name']}"] = (path, common, _edits(
                f"CDI spec {path}: devices[{i}]", dev.get("containerEdits")))
    out: list[tuple[str, dict]] = []
    seen_common: set[str] = set()
    missing = [n for n in names if n not in found]
    if missing:
        hint = ""
        if any(n.startswith("nvidia.com/gpu=") for n in missing):
            hint = ' (could not select device driver "" with capabilities: [[gpu]]: no CDI ' \
                   "spec for nvidia.com/gpu: run nvidia-ctk cdi generate)"
        raise CDIError(f"CDI device injection failed: unresolvable CDI devices "
                       f"{', '.join(missing)}{hint}")
    for n in names:
        path, common, own = found[n]
        if path not in seen_common and common:
            out.append((f"CDI spec {path}", common))
            seen_common.add(path)
        out.append((f"CDI device {n} ({path})", own))
    return out


def _strs(where: str, value) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CDIError(f"{where}: expected a list of strings")
    return value


def apply(spec: dict, names: list[str]) -> None:
    """Apply the devices' edits to an OCI config (process.env, linux.devices and their
    allow rules, mounts, hooks)."""
    for where, edits in resolve(names):
        proc = spec.setdefault("process", {})
        env = list(proc.get("env") or [])
        for e in _strs(f"{where}: env", edits.get("env")):
            key = e.partition("=")[0]
            env = [x for x in env if x.partition("=")[0] != key] + [e]
        proc["env"] = env
        linux = spec.setdefault("linux", {})
        for i, node in enumerate(edits.get("deviceNodes") or []):
            entry, rule = _device_node(f"{where}: deviceNodes[{i}]", node)
            linux.setdefault("devices", [])
            linux["devices"] = [d for d in linux["devices"] if d["path"] != entry["path"]]
            linux["devices"].append(entry)
            linux.setdefault("resources", {}).setdefault("devices", []).append(rule)
        for i, m in enumerate(edits.get("mounts") or []):
            w = f"{where}: mounts[{i}]"
            if not isinstance(m, dict) or not isinstance(m.get("hostPath"), str) or \
                    not isinstance(m.get("containerPath"), str):
                raise CDIError(f"{w}: hostPath and containerPath are required strings")
            if not m["containerPath"].startswith("/"):
                raise CDIError(f"{w}: containerPath must be absolute")
            opts = _strs(f"{w}.options", m.get("options")) or ["rbind", "rprivate"]
            spec.setdefault("mounts", []).append({
                "destination": m["containerPath"], "source": m["hostPath"],
                "type": m.get("type") or "bind", "options": list(opts)})
        for i, h in enumerate(edits.get("hooks") or []):
            w = f"{where}: hooks[{i}]"
            if not isinstance(h, dict) or h.get("hookName") not in (
                    "prestart", "createRuntime", "createContainer", "startContainer",
                    "poststart", "poststop") or not isinstance(h.get("path"), str):
                raise CDIError(f"{w}: needs a hookName (createRuntime, ...) and a path")
            hook: dict = {"path": h["path"]}
            for key in ("args", "env"):
                if h.get(key) is not None:
                    hook[key] = _strs(f"{w}.{key}", h[key])
            if isinstance(h.get("timeout"), int):
                hook["timeout"] = h["timeout"]
            spec.setdefault("hooks", {}).setdefault(h["hookName"], []).append(hook)


def _device_number(value) -> bool:
    """A device major or minor: an integer, not negative (a -1 in the cgroup rule is the
    wildcard, as the CDI library says in refusing it), not a JSON true/false."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _device_node(where: str, node) -> tuple[dict, dict]:
    if not isinstance(node, dict) or not isinstance(node.get("path"), str) or \
            not node["path"].startswith("/"):
        raise CDIError(f"{where}: path must be an absolute path")
    path = node["path"]
    host = node.get("hostPath") or path
    kind, major, minor = node.get("type"), node.get("major"), node.get("minor")
    mode, uid, gid = node.get("fileMode"), node.get("uid"), node.get("gid")
    if kind is None or major is None or (minor is None and kind != "p"):
        try:
            st = os.stat(host)
        except OSError as e:
            raise CDIError(f"{where}: {host}: {e.strerror}") from None
        if stat.S_ISCHR(st.st_mode):
            kind = "c"
        elif stat.S_ISBLK(st.st_mode):
            kind = "b"
        else:
            raise CDIError(f"{where}: {host} is not a device node")
        major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
        mode = stat.S_IMODE(st.st_mode) if mode is None else mode
        uid = st.st_uid if uid is None else uid
        gid = st.st_gid if gid is None else gid
    if kind not in ("c", "b", "u") or not _device_number(major) or not _device_number(minor):
        raise CDIError(f"{where}: type must be c or b with integer major and minor (0 or "
                       "more: -1 would allow every device)")
    perms = node.get("permissions") or "rwm"
    if not isinstance(perms, str) or not set(perms) <= set("rwm"):
        raise CDIError(f"{where}: permissions must be a subset of rwm")
    entry = {"path": path, "type": kind, "major": major, "minor": minor}
    for key, value in (("fileMode", mode), ("uid", uid), ("gid", gid)):
        if value is not None:
            entry[key] = value
    rule = {"allow": True, "type": "c" if kind == "u" else kind, "major": major,
            "minor": minor, "access": perms}
    return entry, rule
