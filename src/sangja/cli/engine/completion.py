"""`sangja completion bash|zsh|fish`: shell completion scripts made from the commands' flag
tables (sangja.cli.flags), so a flag cannot exist without being completed. Containers,
images, volumes and networks are completed by asking sangja itself when a name is typed."""

from __future__ import annotations

import sys

from ..flags import Command, Flag
from .common import PROG, Globals, UsageError

COMPLETION = Command("bash|zsh|fish", "Generate the autocompletion script for the specified "
                     "shell")

# What the operands of a command are, for completing them by name.
_CONTAINER_CMDS = {"start", "stop", "restart", "kill", "rm", "pause", "unpause", "rename", "wait",
                   "inspect", "port", "top", "stats", "attach", "exec", "logs", "commit",
                   "export", "cp", "diff", "update"}
_IMAGE_CMDS = {"run", "create", "rmi", "tag", "save", "history", "push", "image inspect",
               "image rm", "image tag", "image save", "image history", "image push"}
_VOLUME_CMDS = {"volume inspect", "volume rm"}
_NETWORK_CMDS = {"network inspect", "network rm", "network connect", "network disconnect"}


def _global_flags() -> list[tuple[str, bool, str]]:
    """(long name, takes a value, help) of the options before the command: the table
    `sangja --help` shows (sangja.cli.help.global_flags)."""
    from ..help import global_flags

    return [(n, f.takes_value, f.help) for f in global_flags() for n in f.names
            if n.startswith("--")]


def commands() -> list[tuple[str, Command]]:
    """(name as typed, its table) of every command, groups' verbs as "group verb"."""
    from ..help import engine_names, engine_spec

    out = []
    for name, target in engine_names():
        spec = engine_spec(target)
        if spec is None or not spec.hidden:
            out.append((name, spec if spec is not None else Command("", "")))
    return out


def _verbs(cmds: list[tuple[str, Command]]) -> dict[str, list[str]]:
    """Each group's verbs that are listed (not the hidden ones)."""
    out: dict[str, list[str]] = {}
    for name, _ in cmds:
        group, _, verb = name.partition(" ")
        if verb:
            out.setdefault(group, []).append(verb)
    return out


def _operand_kind(name: str) -> str:
    bare = name.removeprefix("container ")
    if bare in _CONTAINER_CMDS:
        return "containers"
    if name in _IMAGE_CMDS or bare in ("run", "create"):
        return "images"
    if name in _VOLUME_CMDS:
        return "volumes"
    if name in _NETWORK_CMDS:
        return "networks"
    return "files"


def _flag_words(f: Flag) -> list[str]:
    return [n for n in f.names if not f.hidden]


def bash() -> str:
    from .. import engine

    cmds = commands()
    top = sorted(set(engine.COMMANDS) | set(engine.SUBCOMMANDS) | {"completion"})
    lines = [
        f"# bash completion for {PROG} (made by `{PROG} completion bash`)",
        f"_{PROG}_names() {{",
        '    local kind=$1 root=()',
        '    [[ -n $_sangja_root ]] && root+=(--root "$_sangja_root")',
        '    [[ -n $_sangja_runroot ]] && root+=(--runroot "$_sangja_runroot")',
        '    case $kind in',
        f"        containers) {PROG} \"${{root[@]}}\" ps -a --format '{{{{.Names}}}}' "
        "2>/dev/null ;;",
        f"        images) {PROG} \"${{root[@]}}\" images --format "
        "'{{.Repository}}:{{.Tag}}' 2>/dev/null | sed -e p -e 's#^localhost/##' "
        "-e 's#^docker.io/library/##' | sort -u ;;",
        f"        volumes) {PROG} \"${{root[@]}}\" volume ls -q 2>/dev/null ;;",
        f"        networks) {PROG} \"${{root[@]}}\" network ls --format '{{{{.Name}}}}' "
        "2>/dev/null ;;",
        '    esac',
        '}',
        f"_{PROG}() {{",
        '    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}',
        '    local cmd="" i w _sangja_root="" _sangja_runroot=""',
        '    for ((i = 1; i < COMP_CWORD; i++)); do',
        '        w=${COMP_WORDS[i]}',
        '        case $w in',
        '            --root) _sangja_root=${COMP_WORDS[i+1]}; ((i++)); continue ;;',
        '            --runroot) _sangja_runroot=${COMP_WORDS[i+1]}; ((i++)); continue ;;',
        '            -*) [[ -z $cmd ]] && continue ;;',
        '        esac',
        '        if [[ -z $cmd ]]; then',
        '            cmd=$w',
        f"            case $cmd in {'|'.join(engine.SUBCOMMANDS)})",
        '                for ((i++; i < COMP_CWORD; i++)); do',
        '                    [[ ${COMP_WORDS[i]} != -* ]] && { cmd="$cmd ${COMP_WORDS[i]}"; '
        'break; }',
        '                done ;;',
        '            esac',
        '            break',
        '        fi',
        '    done',
        '    local flags="" valued="" operands=files',
        '    case $cmd in',
        f"        '') COMPREPLY=($(compgen -W \"{' '.join(top)} "
        f"{' '.join(n for n, _, _ in _global_flags())}\" -- \"$cur\"))",
        '            return ;;',
        "        completion) COMPREPLY=($(compgen -W 'bash zsh fish' -- \"$cur\")); return ;;",
    ]
    for group, verbs in _verbs(cmds).items():
        lines.append(f"        {group}) COMPREPLY=($(compgen -W \"{' '.join(verbs)} --help\" "
                     f"-- \"$cur\")); return ;;")
    for name, spec in cmds:
        words = [w for f in spec.flags for w in _flag_words(f)] + ["--help"]
        valued = [w for f in spec.flags if f.takes_value and f.kind != "optional"
                  for w in _flag_words(f)]
        lines.append(f"        '{name}') flags=\"{' '.join(words)}\" "
                     f"valued=\"{' '.join(valued)}\" operands={_operand_kind(name)} ;;")
    lines += [
        '    esac',
        '    if [[ " $valued " == *" $prev "* ]]; then',
        '        COMPREPLY=($(compgen -f -- "$cur"))',
        '        return',
        '    fi',
        '    if [[ $cur == -* ]]; then',
        '        COMPREPLY=($(compgen -W "$flags" -- "$cur"))',
        '    elif [[ $operands == files ]]; then',
        '        COMPREPLY=($(compgen -f -- "$cur"))',
        '    else',
        f'        COMPREPLY=($(compgen -W "$(_{PROG}_names $operands)" -- "$cur"))',
        '    fi',
        '}',
        f"complete -F _{PROG} {PROG}",
    ]
    return "\n".join(lines) + "\n"


def _zsh_quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "'\\''").replace("[", "\\[") \
        .replace("]", "\\]").replace(":", "\\:").splitlines()[0] if text else ""


def zsh() -> str:
    from .. import engine

    cmds = commands()
    lines = [f"#compdef {PROG}", f"# zsh completion for {PROG} (made by `{PROG} completion zsh`)",
             f"_{PROG}() {{", "    local -a words_after", "    local cmd='' i=2",
             "    while (( i < CURRENT )); do",
             "        case ${words[i]} in",
             "            --root|--runroot) (( i += 2 )); continue ;;",
             "            -*) [[ -z $cmd ]] && { (( i++ )); continue } ;;",
             "        esac",
             "        if [[ -z $cmd ]]; then",
             "            cmd=${words[i]}",
             f"            if [[ $cmd == ({'|'.join(engine.SUBCOMMANDS)}) ]]; then",
             "                (( i++ ))",
             "                while (( i < CURRENT )) && [[ ${words[i]} == -* ]]; do (( i++ )); "
             "done",
             "                (( i < CURRENT )) && cmd=\"$cmd ${words[i]}\"",
             "            fi",
             "            break",
             "        fi",
             "        (( i++ ))",
             "    done",
             "    case $cmd in"]
    top = []
    for name, spec in cmds:
        if " " not in name:
            top.append(f"'{name}:{_zsh_quote(spec.help)}'")
    top.append("'completion:Generate the autocompletion script for the specified shell'")
    top += [f"'{g}:{_zsh_quote(d)}'" for g, d in _groups().items()]
    lines.append("        '') local -a cmds; cmds=(" + " ".join(top) + "); "
                 "_describe -t commands 'sangja command' cmds ;;")
    for group, verbs in _verbs(cmds).items():
        lines.append(f"        {group}) local -a verbs; verbs=({' '.join(verbs)}); "
                     "_describe -t commands verb verbs ;;")
    lines.append("        completion) _values shell bash zsh fish ;;")
    for name, spec in cmds:
        args = []
        for f in spec.flags:
            if f.hidden:
                continue
            desc = _zsh_quote(f.help)
            value = ":value:_files" if f.takes_value and f.kind != "optional" else ""
            for n in f.names:
                rep = "*" if f.kind == "multi" else ""
                args.append(f"'{rep}{n}[{desc}]{value}'")
        kind = _operand_kind(name)
        if kind == "files":
            args.append("'*:file:_files'")
        else:
            args.append(f"'*:{kind[:-1]}:_{PROG}_{kind}'")
        lines.append(f"        '{name}') _arguments -s {' '.join(args)} ;;")
    lines += ["    esac", "}"]
    for kind, query in (("containers", "ps -a --format '{{.Names}}'"),
                        ("images", "images --format '{{.Repository}}:{{.Tag}}'"),
                        ("volumes", "volume ls -q"),
                        ("networks", "network ls --format '{{.Name}}'")):
        lines += [f"_{PROG}_{kind}() {{",
                  "    local -a names roots; local i",
                  "    for (( i = 2; i < CURRENT; i++ )); do  # --root, --runroot as given",
                  "        [[ ${words[i]} == (--root|--runroot) ]] && "
                  "roots+=(${words[i]} ${words[i+1]})",
                  "    done",
                  f"    names=(${{(f)\"$({PROG} $roots {query} 2>/dev/null)\"}})",
                  "    compadd -a names", "}"]
    lines.append(f'_{PROG} "$@"')
    return "\n".join(lines) + "\n"


def _groups() -> dict[str, str]:
    from ..help import GROUPS

    return GROUPS


def fish() -> str:
    from .. import engine

    cmds = commands()
    lines = [f"# fish completion for {PROG} (made by `{PROG} completion fish`)",
             f"function __{PROG}_names  # names of containers, images, ... in the store that",
             "    set -l roots  # the command line's --root and --runroot name",
             "    set -l words (commandline -opc)",
             "    for i in (seq (count $words))",
             "        if contains -- $words[$i] --root --runroot; and test $i -lt (count $words)",
             "            set roots $roots $words[$i] $words[(math $i + 1)]",
             "        end",
             "    end",
             "    switch $argv[1]",
             f"        case containers; {PROG} $roots ps -a --format '{{{{.Names}}}}' 2>/dev/null",
             f"        case images; {PROG} $roots images --format "
             "'{{.Repository}}:{{.Tag}}' 2>/dev/null",
             f"        case volumes; {PROG} $roots volume ls -q 2>/dev/null",
             f"        case networks; {PROG} $roots network ls --format '{{{{.Name}}}}' "
             "2>/dev/null",
             "    end",
             "end",
             f"complete -c {PROG} -f"]
    for n, valued, desc in _global_flags():
        lines.append(f"complete -c {PROG} -n __fish_use_subcommand -l {n[2:]}"
                     f"{' -r' if valued else ''} -d {_fish_quote(desc)}")
    for name, spec in cmds:
        if " " not in name:
            lines.append(f"complete -c {PROG} -n __fish_use_subcommand -a {name} "
                         f"-d {_fish_quote(spec.help)}")
    lines.append(f"complete -c {PROG} -n __fish_use_subcommand -a completion "
                 "-d 'Generate the autocompletion script for the specified shell'")
    lines.append(f"complete -c {PROG} -n '__fish_seen_subcommand_from completion' "
                 "-a 'bash zsh fish'")
    for g, d in _groups().items():
        lines.append(f"complete -c {PROG} -n __fish_use_subcommand -a {g} -d {_fish_quote(d)}")
    for group, verbs in _verbs(cmds).items():
        lines.append(f"complete -c {PROG} -n '__fish_seen_subcommand_from {group}; and not "
                     f"__fish_seen_subcommand_from {' '.join(verbs)}' -a '{' '.join(verbs)}'")
    for name, spec in cmds:
        words = name.split()
        cond = " && ".join(f"__fish_seen_subcommand_from {w}" for w in words)
        if len(words) == 1:  # `rm`, not `image rm`
            cond += f" && not __fish_seen_subcommand_from {' '.join(engine.SUBCOMMANDS)}"
        for f in spec.flags:
            if f.hidden:
                continue
            opts = []
            for n in f.names:
                opts.append(f"-l {n[2:]}" if n.startswith("--") else f"-s {n[1:]}")
            req = " -r" if f.takes_value and f.kind != "optional" else ""
            lines.append(f"complete -c {PROG} -n '{cond}' {' '.join(opts)}{req} "
                         f"-d {_fish_quote(f.help.splitlines()[0] if f.help else '')}")
        kind = _operand_kind(name)
        if kind != "files":
            lines.append(f"complete -c {PROG} -n '{cond}' -a '(__{PROG}_names {kind})'")
        else:
            lines.append(f"complete -c {PROG} -n '{cond}' -F")
    return "\n".join(lines) + "\n"


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def cmd_completion(opts: Globals, args: list[str]) -> int:
    _, rest = COMPLETION.parse(args)
    if len(rest) != 1 or rest[0] not in ("bash", "zsh", "fish"):
        raise UsageError(f"usage: {PROG} completion bash|zsh|fish")
    sys.stdout.write({"bash": bash, "zsh": zsh, "fish": fish}[rest[0]]())
    return 0
