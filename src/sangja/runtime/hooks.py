"""OCI hooks: run with the container state on stdin, an environment of their own and an
optional timeout. Callers decide what a failure means (the spec differs per hook kind)."""

from __future__ import annotations

from ..errors import SangjaError


class HookFailed(SangjaError):
    pass


def run_hooks(hooks: list, kind: str, state: dict) -> None:
    """Run `hooks` (oci.runtime_spec.Hook or dicts) in order; raise HookFailed on the first
    that fails or times out."""
    if not hooks:
        return
    import subprocess

    from ..jsonio import dumps

    payload = dumps(state).encode()
    for i, hook in enumerate(hooks):
        h = hook if isinstance(hook, dict) else hook.to_dict()
        args = h.get("args") or [h["path"]]
        env = dict(e.split("=", 1) for e in h.get("env") or [] if "=" in e)
        what = f"{kind} hook #{i} ({h['path']})"
        try:
            proc = subprocess.run(args, executable=h["path"], input=payload, env=env,
                                  capture_output=True, timeout=h.get("timeout"))
        except subprocess.TimeoutExpired:
            raise HookFailed(f"{what} timed out after {h.get('timeout')}s") from None
        except OSError as e:
            raise HookFailed(f"{what} could not run: {e.strerror}") from None
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).decode(errors="replace").strip()
            detail = detail.splitlines()[-1] if detail else ""
            raise HookFailed(f"{what} failed with exit status {proc.returncode}"
                             + (f": {detail}" if detail else ""))


def run_warn(hooks: list, kind: str, state: dict, warn) -> None:
    """poststart/poststop: a failure is only a warning, the lifecycle continues."""
    for hook in hooks:
        try:
            run_hooks([hook], kind, state)
        except HookFailed as e:
            warn(str(e))

