"""The RUN step: a container of the engine, made from the stage's image so far.

The command is the shell form (the stage's SHELL, ``/bin/sh -c`` by default; a heredoc is
part of the script, ``RUN <<EOF`` alone runs the heredoc as the script) or the exec form.
Its environment is the image's Env plus the ARGs in scope (and the proxy build args),
its user and working directory the image's; its network the one `sangja build --network`
names (default: the engine's default for containers), or RUN's own ``--network``. Output
goes to the progress as it comes; a non-zero exit fails the build with the exit code and
the last lines of output.

``--mount``: ``type=cache`` (a directory kept between builds in the store,
``<root>/build-cache/mounts/``), ``type=bind`` (read-only, from the context or, with
``from=``, a stage or image), ``type=secret`` (a ``--secret id=...,src=...`` file,
read-only at ``/run/secrets/ID``), ``type=tmpfs``. Their mount points are not part of the
step's layer.
"""

from __future__ import annotations

import os
import posixpath
from contextlib import ExitStack

from .errors import BuildError, StepFailed
from .lexer import expand

TYPE_CHECKING = False  # annotations only: the engine's options load when a step runs
if TYPE_CHECKING:
    from ..engine.options import MountRequest
    from .executor import State, _StageRun
    from .parser import Instruction

__all__ = ["run_step"]

_FLAGS = {"mount", "network", "security"}


def _command(state: State, ins: Instruction) -> list[str]:
    from .executor import DEFAULT_SHELL

    if ins.json is not None:
        if not ins.json:
            raise BuildError("RUN: an empty exec form has nothing to run")
        return list(ins.json)
    shell = list(state.inner.get("Shell") or DEFAULT_SHELL)
    text = ins.rest
    if ins.heredocs:
        first = ins.heredocs[0]
        words = text.split()
        if len(ins.heredocs) == 1 and len(words) == 1 and words[0].startswith("<<"):
            return [*shell, first.content]  # RUN <<EOF: the heredoc is the script
        text = text + "\n" + "".join(f"{d.content}{d.name}\n" for d in ins.heredocs)
    return [*shell, text]


def _mount_specs(ins: Instruction, env: dict[str, str], escape: str) -> list[dict[str, str]]:
    out = []
    for spec in ins.flag_values("mount"):
        fields: dict[str, str] = {}
        for part in spec.split(","):
            key, eq, value = part.partition("=")
            key = key.strip().lower()
            fields[key] = expand(value, env, escape) if eq else "true"
        fields.setdefault("type", "bind")
        if "dst" in fields or "destination" in fields:
            fields["target"] = fields.pop("dst", "") or fields.pop("destination", "")
        if "src" in fields:
            fields["source"] = fields.pop("src")
        out.append(fields)
    return out


def _mounts(run: _StageRun, state: State, ins: Instruction, stack: ExitStack,
            env: dict[str, str]
            ) -> tuple[list[MountRequest], list[str]]:
    """(MountRequests, a description of them for the cache key)."""
    b = run.b
    requests: list[MountRequest] = []
    described: list[str] = []
    specs = _mount_specs(ins, env, b.file.escape)
    if not specs:
        return requests, described
    from ..engine.options import MountRequest
    from ..linux.paths import O_PATH, fd_path, open_in_root

    workdir = state.inner.get("WorkingDir") or "/"
    for m in specs:
        kind = m["type"]
        target = m.get("target")
        if kind == "secret" and not target:
            target = f"/run/secrets/{m.get('id', '')}"
        if not target:
            raise BuildError(f"RUN --mount type={kind}: target is required")
        if not target.startswith("/"):
            target = posixpath.join(workdir, target)
        if kind == "cache":
            cid = m.get("id") or target
            from ..digest import sha256

            path = os.path.join(b.root, "build-cache", "mounts",
                                sha256(cid.encode()).hexdigest()[:32])
            if not os.path.isdir(path):
                os.makedirs(path, mode=0o755, exist_ok=True)
                os.chown(path, int(m.get("uid", "0")), int(m.get("gid", "0")))
                os.chmod(path, int(m.get("mode", "755"), 8))
            requests.append(MountRequest(type="bind", target=target, source=path,
                                         options=["rbind"]))
            described.append(f"cache:{target}")
        elif kind == "tmpfs":
            opts = [f"size={m['size']}"] if m.get("size") else []
            requests.append(MountRequest(type="tmpfs", target=target, options=opts))
            described.append(f"tmpfs:{target}")
        elif kind == "secret":
            sid = m.get("id") or posixpath.basename(target)
            src = b.opts.secrets.get(sid)
            if src is None:
                if m.get("required", "false") in ("true", "1"):
                    raise BuildError(f"RUN --mount type=secret: secret {sid!r} was not given "
                                     "(sangja build --secret id=ID,src=FILE)")
                continue
            requests.append(MountRequest(type="bind", target=target, source=src,
                                         readonly=True, options=["rbind"]))
            described.append(f"secret:{sid}:{target}")  # its content is not in the key
        elif kind == "bind":
            if m.get("rw", m.get("readwrite", "false")) in ("true", "1"):
                raise BuildError("RUN --mount type=bind,rw is not supported (read-only "
                                 "bind mounts only)")
            src = posixpath.normpath("/" + m.get("source", "/")).lstrip("/") or "."
            if m.get("from"):
                from .copy_step import _mounted, _source_state

                src_state, part = _source_state(run, m["from"])
                root_fd = stack.enter_context(_mounted(run, src_state))
            else:
                if b.context is None:
                    raise BuildError("RUN --mount type=bind needs a build context")
                root_fd = os.open(b.context, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                stack.callback(os.close, root_fd)
                from .context import digest_sources

                part = digest_sources(root_fd, [src], cache=b.digests)
            try:  # resolved inside its root; mounted by the name of what was found
                pfd = open_in_root(root_fd, src, O_PATH)
            except (FileNotFoundError, NotADirectoryError):
                raise BuildError(f"RUN --mount type=bind: source {src!r} not found") from None
            stack.callback(os.close, pfd)
            requests.append(MountRequest(type="bind", target=target,
                                         source=os.readlink(fd_path(pfd)), readonly=True,
                                         options=["rbind"]))
            described.append(f"bind:{target}:{src}:{part}")
        else:
            raise BuildError(f"RUN --mount type={kind} is not supported (cache, bind, secret, "
                             "tmpfs)")
    return requests, described


def _network(run: _StageRun, ins: Instruction) -> str | None:
    value = ins.flag("network")
    if value in (None, "default"):
        return run.b.opts.network
    if value not in ("none", "host"):
        raise BuildError(f"RUN --network={value}: want default, none or host")
    return value


def run_step(run: _StageRun, state: State, ins: Instruction) -> State:
    from .executor import PROXY_ARGS, _key, key_json, materialize

    b = run.b
    for name, value in ins.flags:
        if name not in _FLAGS:
            raise BuildError(f"RUN: unknown flag --{name}")
        if name == "security" and value not in ("sandbox", None):
            raise BuildError(f"RUN --security={value} is not supported")
    argv = _command(state, ins)
    env = run.env(state)
    run._note_args(state, ins.rest)
    network = _network(run, ins)
    with ExitStack() as stack:
        mounts, described = _mounts(run, state, ins, stack, env)
        key = _key(state.key, "RUN", key_json(argv), key_json(described))
        hit = run.cached(key, state)
        if hit is not None:
            return hit
        from ..engine.commit import container_layer, mount_stubs, remove_mount_stubs
        from ..engine.options import ContainerOptions
        from .progress import OutputTail
        from .watchdog import LABEL

        b.used_args.update(state.args)  # every ARG in scope is in a RUN's environment
        image_id = materialize(run.store, state, b.epoch)
        run_env = [f"{k}={v}" for k, v in state.args.items() if k not in state.env()]
        run_env += [f"{k}={v}" for k, v in b.opts.build_args.items()
                    if k in PROXY_ARGS and k not in state.args]
        opts = ContainerOptions(image=image_id, command=argv, entrypoint=[], env=run_env,
                                workdir=state.inner.get("WorkingDir") or None,
                                user=state.inner.get("User") or None, log_driver="none",
                                mounts=mounts, labels={"io.sangja.build": "step",
                                                       LABEL: b.run_label()})
        if network is not None:
            opts.network = network
        engine = run.engine
        cid = engine.create(opts)
        try:
            rootfs = engine.snapshots().prepare(cid, run.store.unpacked_layers(image_id))
            stubs = mount_stubs(rootfs, RUN_MOUNT_POINTS + [m.target for m in mounts])
            out = OutputTail(run.progress)
            client = engine.start(cid, attach=True)
            try:
                code = client.relay(None, out, out, False)
                if code is None:
                    code = engine.wait(cid)
                engine.cleanup(cid)
            finally:
                client.close()
            if code != 0:
                tail = out.tail()
                raise StepFailed(f"RUN exited with code {code}"
                                 + (f": {tail}" if tail else " (no output)"),
                                 exit_code=code, tail=tail)
            row = engine.db.get(cid)
            engine.snapshots().unmount(cid)
            remove_mount_stubs(engine.snapshots().diff_dir(cid), stubs)
            stored = container_layer(engine, row, epoch=b.epoch, adopt=True)
        finally:
            try:
                engine.remove(cid, force=True)
            except Exception:  # noqa: BLE001 - the step's own error matters more
                pass
        text = f"RUN {' '.join(argv) if ins.json is None else key_json(argv)}"
        return run.add_layer(state, stored, ins, key, text=text)


RUN_MOUNT_POINTS = ["/proc", "/sys", "/dev", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf"]
