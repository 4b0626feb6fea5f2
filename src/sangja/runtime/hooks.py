"""OCI hooks: run with the container state on stdin, an environment of their own and an
optional timeout. Callers decide what a failure means (the spec differs per hook kind).

Hooks run by the container's init (createContainer, startContainer) are exec'd inside the
container's namespaces, so they go through the sealed sangja-exec like the container's
own program (sealed_exec.py): a fork of the runtime must never exec a path there itself."""

from __future__ import annotations

import os

from ..errors import SangjaError


class HookFailed(SangjaError):
    pass


class _TimedOut(Exception):
    pass


def run_hooks(hooks: list, kind: str, state: dict, helper_fd: int | None = None) -> None:
    """Run `hooks` (oci.runtime_spec.Hook or dicts) in order; raise HookFailed on the first
    that fails or times out. With `helper_fd` each is exec'd through sangja-exec."""
    if not hooks:
        return
    from ..jsonio import dumps

    payload = dumps(state).encode()
    for i, hook in enumerate(hooks):
        h = hook if isinstance(hook, dict) else hook.to_dict()
        args = h.get("args") or [h["path"]]
        env = dict(e.split("=", 1) for e in h.get("env") or [] if "=" in e)
        what = f"{kind} hook #{i} ({h['path']})"
        run = _run_direct if helper_fd is None else _run_sealed
        try:
            code, out, err = run(h["path"], args, env, payload, h.get("timeout"), helper_fd)
        except _TimedOut:
            raise HookFailed(f"{what} timed out after {h.get('timeout')}s") from None
        except OSError as e:
            raise HookFailed(f"{what} could not run: {e.strerror}") from None
        if code != 0:
            detail = (err or out).decode(errors="replace").strip()
            detail = detail.splitlines()[-1] if detail else ""
            raise HookFailed(f"{what} failed with exit status {code}"
                             + (f": {detail}" if detail else ""))


def run_warn(hooks: list, kind: str, state: dict, warn) -> None:
    """poststart/poststop: a failure is only a warning, the lifecycle continues."""
    for hook in hooks:
        try:
            run_hooks([hook], kind, state)
        except HookFailed as e:
            warn(str(e))


def _run_direct(path, args, env, payload, timeout, _helper_fd) -> tuple[int, bytes, bytes]:
    """A hook in the runtime's own namespaces: a host program, run as any other."""
    import subprocess

    try:
        p = subprocess.run(args, executable=path, input=payload, env=env,
                           capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise _TimedOut() from None
    return p.returncode, p.stdout, p.stderr


def _run_sealed(path, args, env, payload, timeout, helper_fd) -> tuple[int, bytes, bytes]:
    """fork, then exec the hook through sangja-exec; feed stdin, collect stdout and stderr
    until both close, kill the hook at its timeout."""
    import select
    import time

    from .sealed_exec import execve

    pipes = [os.pipe() for _ in range(3)]  # stdin, stdout, stderr
    pid = os.fork()
    if pid == 0:
        try:
            for target, (r, w) in enumerate(pipes):
                os.dup2(r if target == 0 else w, target)
            execve(helper_fd, path, args, env)
        except OSError as e:
            os.write(2, f"cannot exec sangja-exec: {e.strerror}\n".encode())
        finally:
            os._exit(127)
    os.close(pipes[0][0])
    os.close(pipes[1][1])
    os.close(pipes[2][1])
    stdin, outs = pipes[0][1], {pipes[1][0]: bytearray(), pipes[2][0]: bytearray()}
    deadline = None if timeout is None else time.monotonic() + timeout
    poller = select.poll()
    poller.register(stdin, select.POLLOUT)
    for fd in outs:
        poller.register(fd, select.POLLIN)
    open_fds = {stdin, *outs}
    try:
        while open_fds:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                raise _TimedOut()
            for fd, _ev in poller.poll(None if left is None else int(left * 1000) + 1):
                if fd == stdin:
                    try:
                        payload = payload[os.write(stdin, payload):]
                    except BrokenPipeError:
                        payload = b""
                    if not payload:
                        poller.unregister(fd)
                        open_fds.discard(fd)
                        os.close(fd)
                    continue
                chunk = os.read(fd, 65536)
                if chunk:
                    outs[fd] += chunk
                else:
                    poller.unregister(fd)
                    open_fds.discard(fd)
        while not (done := os.waitpid(pid, os.WNOHANG))[0]:
            if deadline is not None and time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                raise _TimedOut()
            time.sleep(0.005)
        status = done[1]
    finally:
        for fd in open_fds | set(outs):
            try:
                os.close(fd)
            except OSError:
                pass
    from ..linux.process import exit_status

    out, err = outs.values()
    return exit_status(status), bytes(out), bytes(err)
