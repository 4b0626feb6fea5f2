#!/usr/bin/env bash
# sangja demo: the same questions asked on the host and inside a container,
# then the OCI lifecycle (create/start/state/ps/kill/delete) of a second one, then
# the Docker-style engine (scripts/demo-engine.sh).
#
# Needs root and `make install` (run it via `make demo`). Everything lives under
# build/demo/ and uses its own state root, so nothing collides with the system's
# /run/sangja. Safe to run repeatedly; containers are removed even on failure.
set -euo pipefail

cd "$(dirname "$0")/.."

PY=.venv/bin/python
STATE=build/demo/state
BUNDLE=build/demo/bundle
RT=(.venv/bin/sangja-runtime --root "$STATE")
RUN_ID="demo-$$"
LIFE_ID="demo-life-$$"

if [[ $EUID -ne 0 ]]; then
    echo "demo.sh: needs root (namespaces, mounts, pivot_root)" >&2
    exit 1
fi
if [[ ! -x .venv/bin/sangja-runtime ]]; then
    echo "demo.sh: .venv/bin/sangja-runtime missing; run 'make install' first" >&2
    exit 1
fi

cleanup() {
    local id
    for id in "$RUN_ID" "$LIFE_ID"; do
        "${RT[@]}" delete --force "$id" >/dev/null 2>&1 || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

section() { printf '\n===== %s =====\n' "$*"; }
step() {  # print a command, then run it
    printf '\n$ sangja-runtime --root %s %s\n' "$STATE" "$*"
    "${RT[@]}" "$@"
}
# set_process_args ARGS...: config.json gets terminal false, hostname, these args.
set_process_args() {
    "$PY" -c 'import json, sys
path, args = sys.argv[1], sys.argv[2:]
with open(path) as f:
    c = json.load(f)
c["process"]["terminal"] = False
c["process"]["args"] = args
c["hostname"] = "sangja-demo"
with open(path, "w") as f:
    json.dump(c, f, indent=2)
    f.write("\n")' "$BUNDLE/config.json" "$@"
}
wait_stopped() {  # after kill: give the container up to 5 s to exit
    local i out
    for i in $(seq 50); do
        out=$("${RT[@]}" state "$1" 2>/dev/null) || return 0
        [[ $out =~ \"status\":\ *\"stopped\" ]] && return 0
        sleep 0.1
    done
    return 0
}

# Leftovers of an earlier, interrupted demo.
for id in $("${RT[@]}" list -q 2>/dev/null || true); do
    "${RT[@]}" delete --force "$id" >/dev/null 2>&1 || true
done

# --- bundle: busybox rootfs + runc-style default config ---------------------
mkdir -p "$BUNDLE"
"$PY" -c 'from sangja.image.busybox import build_busybox_rootfs; build_busybox_rootfs("build/demo/bundle/rootfs")'
rm -f "$BUNDLE/config.json"
.venv/bin/sangja-runtime spec --bundle "$BUNDLE"

# The container answers the same questions the host answers below.
# shellcheck disable=SC2016  # expanded inside the container, not here
CONTAINER_SCRIPT='echo "hostname:        $(hostname)"
echo "PID of the shell: $$"
echo "processes:"
ps -o pid,comm
echo "mounts ($(wc -l < /proc/self/mounts)):"
cat /proc/self/mounts'
set_process_args sh -c "$CONTAINER_SCRIPT"

# --- host vs container -------------------------------------------------------
section "host"
echo "hostname:        $(uname -n)"
echo "PID of the shell: $$"
echo "processes:       $(ps -e --no-headers | wc -l)"
echo "mounts:          $(wc -l < /proc/self/mounts)"

section "container (sangja-runtime run)"
"${RT[@]}" run --bundle "$BUNDLE" "$RUN_ID"

# --- lifecycle ---------------------------------------------------------------
section "lifecycle: create / start / state / ps / kill / delete"
set_process_args sleep 30
step create --bundle "$BUNDLE" "$LIFE_ID" </dev/null
printf '\n$ sangja-runtime --root %s state %s\n' "$STATE" "$LIFE_ID"
"${RT[@]}" state "$LIFE_ID" | "$PY" -m json.tool
step start "$LIFE_ID"
printf '\n$ sangja-runtime --root %s state %s\n' "$STATE" "$LIFE_ID"
"${RT[@]}" state "$LIFE_ID" | "$PY" -m json.tool
step ps "$LIFE_ID"
step kill "$LIFE_ID" KILL
wait_stopped "$LIFE_ID"
step delete "$LIFE_ID"
step list

printf '\n(runtime part finished)\n'

./scripts/demo-engine.sh

printf '\ndemo finished\n'
