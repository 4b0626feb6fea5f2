"""Stages of a Containerfile: where each begins (FROM), what it is called, what it needs
from the others, and which of them a target needs at all.

ARGs before the first FROM are the build's "meta" args: they can be used in FROM lines,
and a stage sees their values only if it declares them again (``ARG NAME``) - Docker's
rule. Stages are numbered from 0 and named by ``AS name`` (case-insensitive); FROM, COPY
--from and RUN --mount from= may name an earlier stage by name or number, anything else
is an image. A stage the target does not need is not built.
"""

from __future__ import annotations

from ..records import dataclass, field
from .errors import BuildError
from .lexer import expand, split_words
from .parser import Containerfile, Instruction

__all__ = ["Stage", "Plan", "plan"]


@dataclass
class Stage:
    index: int
    name: str | None
    base: str  # the FROM image (expanded), "scratch", or an earlier stage's name/number
    from_ins: Instruction
    platform: str | None = None
    instructions: list[Instruction] = field(default_factory=list)
    deps: set[int] = field(default_factory=set)  # stages it needs
    base_stage: int | None = None  # FROM an earlier stage


@dataclass
class Plan:
    file: Containerfile
    stages: list[Stage]
    meta_args: dict[str, str]  # after --build-arg
    meta_declared: set[str]
    target: int
    needed: list[int]  # stage indexes to build, in order


def _stage_ref(stages: list[Stage], ref: str, before: int) -> int | None:
    low = ref.lower()
    for s in stages[:before]:
        if s.name is not None and s.name == low:
            return s.index
    if ref.isdigit():
        n = int(ref)
        if n < before:
            return n
        raise BuildError(f"stage {ref} is not an earlier stage (a stage can only use the "
                         "stages before it)")
    return None


def _mount_froms(ins: Instruction) -> list[str]:
    out = []
    for spec in ins.flag_values("mount"):
        for part in spec.split(","):
            key, _, value = part.partition("=")
            if key.strip() == "from" and value:
                out.append(value.strip())
    return out


def plan(file: Containerfile, build_args: dict[str, str], target: str | None,
         builtin: dict[str, str]) -> Plan:
    """Split into stages, expand FROM lines with the meta args, resolve stage references
    and pick the stages the target needs."""
    where = file.where
    meta: dict[str, str] = dict(builtin)
    declared: set[str] = set()
    stages: list[Stage] = []
    for ins in file.instructions:
        if ins.cmd == "FROM":
            words = split_words(ins.rest, file.escape)
            if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
                raise BuildError("FROM requires either one or three arguments: FROM IMAGE "
                                 "[AS NAME]", where(ins))
            try:
                base = expand(words[0], meta, file.escape)
                platform = ins.flag("platform")
                if platform is not None:
                    platform = expand(platform, meta, file.escape)
            except BuildError as e:
                raise e.at(where(ins)) from None
            if not base:
                raise BuildError("FROM: the base name is empty", where(ins))
            name = words[2].lower() if len(words) == 3 else None
            if name is not None:
                if not name.replace("-", "").replace("_", "").replace(".", "").isalnum() or \
                        not name[0].isalpha():
                    raise BuildError(f"invalid stage name {words[2]!r}: it must start with a "
                                     "letter and hold only letters, digits, '-', '_' and '.'",
                                     where(ins))
                if any(s.name == name for s in stages):
                    raise BuildError(f"duplicate stage name {name!r}", where(ins))
            unknown = [n for n, _ in ins.flags if n != "platform"]
            if unknown:
                raise BuildError(f"FROM: unknown flag --{unknown[0]}", where(ins))
            stages.append(Stage(index=len(stages), name=name, base=base, from_ins=ins,
                                platform=platform))
            continue
        if not stages:
            if ins.cmd != "ARG":
                raise BuildError(f"{ins.cmd} before the first FROM: only ARG may come first",
                                 where(ins))
            for word in split_words(ins.rest, file.escape):
                key, eq, default = word.partition("=")
                try:
                    value = expand(default, meta, file.escape) if eq else None
                except BuildError as e:
                    raise e.at(where(ins)) from None
                declared.add(key)
                if key in build_args:
                    meta[key] = build_args[key]
                elif value is not None:
                    meta[key] = value
            continue
        stages[-1].instructions.append(ins)
    if not stages:
        raise BuildError(f"{file.path}: no FROM instruction: a Containerfile needs at least one "
                         "stage")
    for st in stages:
        ref = _stage_ref(stages, st.base, st.index)
        if ref is not None:
            st.base_stage = ref
            st.deps.add(ref)
        for ins in st.instructions:
            refs: list[str] = []
            if ins.cmd in ("COPY", "ADD") and (from_ref := ins.flag("from")):
                refs.append(from_ref)
            if ins.cmd == "RUN":
                refs += _mount_froms(ins)
            for r in refs:
                try:
                    r = expand(r, meta, file.escape)
                    n = _stage_ref(stages, r, st.index)
                except BuildError as e:
                    raise e.at(where(ins)) from None
                if n is not None:
                    st.deps.add(n)
                elif _stage_ref(stages, r, len(stages)) is not None:
                    raise BuildError(f"stage {r!r} is not an earlier stage", where(ins))
    if target is None:
        tgt = len(stages) - 1
    else:
        found = [s.index for s in stages if s.name == target.lower()]
        if not found:
            raise BuildError(f"target stage {target!r} could not be found in {file.path}")
        tgt = found[0]
    need: set[int] = set()
    todo = [tgt]
    while todo:
        n = todo.pop()
        if n not in need:
            need.add(n)
            todo.extend(stages[n].deps)
    return Plan(file=file, stages=stages, meta_args=meta, meta_declared=declared, target=tgt,
                needed=sorted(need))
