"""The OCI runtime configuration (config.json), parsed and validated.

Unknown properties are ignored, as the spec requires; known ones are type-checked and every
error names its field. What the runtime can honour is decided in `sangja.runtime.bundle`.
"""

from __future__ import annotations

from ..errors import ConfigError
from .validate import get, int_list, kind_of, obj, obj_list, str_list, uint

HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
              "poststop")
NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")


class User:
    __slots__ = ("uid", "gid", "umask", "additional_gids")

    def __init__(self, d: dict, where: str):
        self.uid = uint(d, "uid", where, default=0)
        self.gid = uint(d, "gid", where, default=0)
        self.umask = uint(d, "umask", where)
        self.additional_gids = int_list(d, "additionalGids", where)
        for i, g in enumerate(self.additional_gids):
            if not 0 <= g < 1 << 32:
                raise ConfigError(f"{where}.additionalGids[{i}]: expected an integer from 0 "
                                  f"to {(1 << 32) - 1}, got {g}")


class Rlimit:
    __slots__ = ("type", "soft", "hard")

    def __init__(self, d: dict, where: str):
        self.type = get(d, "type", str, where, required=True)
        self.soft = uint(d, "soft", where, required=True, bits=64)
        self.hard = uint(d, "hard", where, required=True, bits=64)


class Process:
    __slots__ = ("terminal", "console_size", "cwd", "env", "args", "user", "rlimits",
                 "capabilities", "no_new_privileges", "oom_score_adj", "apparmor_profile",
                 "selinux_label", "raw")

    def __init__(self, d: dict, where: str = "process"):
        self.raw = d
        self.terminal = get(d, "terminal", bool, where, default=False)
        cs = obj(d, "consoleSize", where)
        self.console_size = (uint(cs, "height", where + ".consoleSize", default=0),
                             uint(cs, "width", where + ".consoleSize", default=0)) if cs else None
        self.cwd = get(d, "cwd", str, where, required=True)
        if not self.cwd.startswith("/"):
            raise ConfigError(f"{where}.cwd must be an absolute path, not {self.cwd!r}")
        self.env = str_list(d, "env", where)
        self.args = str_list(d, "args", where)
        self.user = User(obj(d, "user", where), where + ".user")
        self.rlimits = [Rlimit(r, f"{where}.rlimits[{i}]")
                        for i, r in enumerate(obj_list(d, "rlimits", where))]
        caps = obj(d, "capabilities", where)
        for k in caps:
            str_list(caps, k, where + ".capabilities")
        self.capabilities = caps if "capabilities" in d and d["capabilities"] is not None else None
        self.no_new_privileges = get(d, "noNewPrivileges", bool, where, default=False)
        self.oom_score_adj = get(d, "oomScoreAdj", int, where)
        if self.oom_score_adj is not None and not -1000 <= self.oom_score_adj <= 1000:
            raise ConfigError(f"{where}.oomScoreAdj must be between -1000 and 1000")
        self.apparmor_profile = get(d, "apparmorProfile", str, where, default="")
        self.selinux_label = get(d, "selinuxLabel", str, where, default="")


class Mount:
    __slots__ = ("destination", "type", "source", "options")

    def __init__(self, d: dict, where: str):
        self.destination = get(d, "destination", str, where, required=True)
        if not self.destination.startswith("/"):
            raise ConfigError(f"{where}.destination must be an absolute path, "
                              f"not {self.destination!r}")
        self.type = get(d, "type", str, where, default="")
        self.source = get(d, "source", str, where, default="")
        self.options = str_list(d, "options", where)


class Hook:
    __slots__ = ("path", "args", "env", "timeout")

    def __init__(self, d: dict, where: str):
        self.path = get(d, "path", str, where, required=True)
        if not self.path.startswith("/"):
            raise ConfigError(f"{where}.path must be an absolute path, not {self.path!r}")
        self.args = str_list(d, "args", where)
        self.env = str_list(d, "env", where)
        self.timeout = get(d, "timeout", int, where)
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigError(f"{where}.timeout must be greater than zero")

    def to_dict(self) -> dict:
        d = {"path": self.path, "args": self.args, "env": self.env}
        if self.timeout is not None:
            d["timeout"] = self.timeout
        return d


class Namespace:
    __slots__ = ("type", "path")

    def __init__(self, d: dict, where: str):
        self.type = get(d, "type", str, where, required=True)
        if self.type not in NAMESPACE_TYPES:
            raise ConfigError(f"{where}.type {self.type!r} is not a namespace type "
                              f"({', '.join(NAMESPACE_TYPES)})")
        self.path = get(d, "path", str, where, default="")


class Device:
    __slots__ = ("type", "path", "major", "minor", "file_mode", "uid", "gid")

    def __init__(self, d: dict, where: str):
        self.type = get(d, "type", str, where, required=True)
        if self.type not in ("c", "b", "u", "p"):
            raise ConfigError(f"{where}.type must be one of c, b, u, p, not {self.type!r}")
        self.path = get(d, "path", str, where, required=True)
        if not self.path.startswith("/"):
            raise ConfigError(f"{where}.path must be an absolute path")
        need = self.type != "p"
        self.major = get(d, "major", int, where, required=need, default=0)
        self.minor = get(d, "minor", int, where, required=need, default=0)
        self.file_mode = uint(d, "fileMode", where)
        self.uid = uint(d, "uid", where)
        self.gid = uint(d, "gid", where)


class Linux:
    __slots__ = ("namespaces", "devices", "cgroups_path", "rootfs_propagation",
                 "masked_paths", "readonly_paths", "resources", "sysctl", "raw")

    def __init__(self, d: dict, where: str = "linux"):
        self.raw = d
        self.namespaces = [Namespace(n, f"{where}.namespaces[{i}]")
                           for i, n in enumerate(obj_list(d, "namespaces", where))]
        seen = set()
        for n in self.namespaces:
            if n.type in seen:
                raise ConfigError(f"{where}.namespaces: {n.type} namespace listed twice")
            seen.add(n.type)
        self.devices = [Device(x, f"{where}.devices[{i}]")
                        for i, x in enumerate(obj_list(d, "devices", where))]
        self.cgroups_path = get(d, "cgroupsPath", str, where, default="")
        self.rootfs_propagation = get(d, "rootfsPropagation", str, where, default="")
        self.masked_paths = str_list(d, "maskedPaths", where)
        self.readonly_paths = str_list(d, "readonlyPaths", where)
        self.resources = obj(d, "resources", where)
        self.sysctl = obj(d, "sysctl", where)


class Spec:
    """config.json. `raw` keeps the document for the fields only a later stage reads."""

    __slots__ = ("oci_version", "root_path", "root_readonly", "process", "hostname",
                 "domainname", "mounts", "hooks", "annotations", "linux", "raw",
                 "seccomp_filter")

    def __init__(self, d: dict):
        if not isinstance(d, dict):
            raise ConfigError(f"expected a JSON object, got {kind_of(d)}")
        self.raw = d
        # The linux.seccomp filter compiled while validating (sangja.linux.seccomp.Filter),
        # kept so the init (a fork of the validating process) loads it without compiling
        # it again.
        self.seccomp_filter = None
        self.oci_version = get(d, "ociVersion", str, "$", required=True)
        major = self.oci_version.split(".", 1)[0]
        if major != "1":
            raise ConfigError(f"ociVersion {self.oci_version!r} is not supported "
                              "(this runtime speaks runtime-spec 1.x)")
        root = obj(d, "root", "$", required=True)
        self.root_path = get(root, "path", str, "root", required=True)
        self.root_readonly = get(root, "readonly", bool, "root", default=False)
        p = get(d, "process", dict, "$")
        self.process = Process(p) if p is not None else None
        self.hostname = get(d, "hostname", str, "$", default="")
        self.domainname = get(d, "domainname", str, "$", default="")
        self.mounts = [Mount(m, f"mounts[{i}]") for i, m in enumerate(obj_list(d, "mounts", "$"))]
        hooks = obj(d, "hooks", "$")
        self.hooks: dict[str, list[Hook]] = {}
        for kind in HOOK_KINDS:
            self.hooks[kind] = [Hook(h, f"hooks.{kind}[{i}]")
                                for i, h in enumerate(obj_list(hooks, kind, "hooks"))]
        ann = obj(d, "annotations", "$")
        for k, v in ann.items():
            if not isinstance(v, str):
                raise ConfigError(f"annotations.{k}: expected a string, got {kind_of(v)}")
        self.annotations = ann
        self.linux = Linux(obj(d, "linux", "$"))


def load(path: str) -> Spec:
    """Read and validate a config.json; ConfigError with one clear line on any problem:
    ``PATH: invalid JSON: ... at line L column C`` for a document that does not parse,
    ``config.json: FIELD: expected ..., got ...`` for one of the wrong shape."""
    from ..jsonio import load_file

    try:
        doc = load_file(path)
    except FileNotFoundError:
        raise ConfigError(f"{path} not found") from None
    except ValueError as e:  # jsonio.JSONError: names the file and the position
        raise ConfigError(str(e)) from None
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from None
    return parse(doc, "config.json")


def parse(doc, source: str) -> Spec:
    """Spec(doc), its errors prefixed with the document's name."""
    try:
        return Spec(doc)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
