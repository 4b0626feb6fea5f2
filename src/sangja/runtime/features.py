"""`features`: what this runtime implements, in the runtime-spec features.json format."""

from __future__ import annotations

from .. import OCI_VERSION
from ..linux import capabilities, mounts, namespaces
from ..oci.runtime_spec import HOOK_KINDS


def features() -> dict:
    from ..linux.cgroups import mode

    words = sorted(set(mounts.FLAG_WORDS) | set(mounts.PROPAGATION_WORDS)
                   | set(mounts.RECURSIVE_WORDS) | set(mounts.IDMAP_WORDS)
                   | set(mounts.COPYUP_WORDS))
    cg = mode()
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOK_KINDS),
        "mountOptions": words,
        "linux": {
            "namespaces": namespaces.available(),
            "capabilities": list(capabilities.NAMES[: capabilities.last_cap() + 1]),
            "cgroup": {"v1": cg in ("v1", "hybrid"), "v2": cg in ("v2", "hybrid"),
                       "systemd": False, "systemdUser": False, "rdma": False},
            "seccomp": _seccomp(),
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": True}},
        },
        "annotations": {"org.opencontainers.runtime-spec.features": "sangja"},
    }


def _seccomp() -> dict:
    from ..linux import seccomp

    try:
        seccomp.compile({"defaultAction": "SCMP_ACT_ALLOW"}).release()
    except Exception:  # noqa: BLE001 - no libseccomp: report it off
        return {"enabled": False}
    return {
        "enabled": True,
        "actions": sorted(seccomp.ACTIONS),
        "operators": sorted(seccomp.OPS),
        "archs": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64",
                  "SCMP_ARCH_ARM"],
        "knownFlags": sorted(seccomp.FLAGS),
        "supportedFlags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                           "SECCOMP_FILTER_FLAG_TSYNC"],
    }
