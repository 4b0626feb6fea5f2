#!/usr/bin/env bash
# sangja demo, part 2: the Docker-style engine. A base image with no registry, a
# container in the foreground, one detached (ps, logs, exec, stats, stop, rm), a
# volume that outlives its container, what confinement looks like from inside, and the
# seeds' container diet: a multi-stage build of one program into three images, a network
# with a published port and names between containers, and a round trip through a registry
# (Debian's docker-registry on loopback).
#
# Needs root and `make install`. Uses its own storage and run roots under build/demo/,
# so nothing touches /var/lib/sangja. Safe to run repeatedly; containers are removed
# even on failure.
set -euo pipefail

cd "$(dirname "$0")/.."

ROOT=build/demo/engine-root
RUNROOT=build/demo/engine-run
SJ=(.venv/bin/sangja --root "$ROOT" --runroot "$RUNROOT")

REGISTRY_PID=
cleanup() {
    "${SJ[@]}" rm -f -v demo-web demo-httpd >/dev/null 2>&1 || true
    "${SJ[@]}" volume rm -f demo-data >/dev/null 2>&1 || true
    # the networks' bridges, rules and keepers: the host is left as it was
    "${SJ[@]}" network prune -f >/dev/null 2>&1 || true
    if [[ -n $REGISTRY_PID ]]; then kill "$REGISTRY_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step() {  # print a command, then run it
    local a out="\$ sangja"
    for a in "$@"; do  # single-quote the arguments that need it, for reading
        if [[ $a =~ [[:space:]\;\|\&\$\"\<\>\(\)] ]]; then out+=" '$a'"; else out+=" $a"; fi
    done
    printf '\n%s\n' "$out"
    "${SJ[@]}" "$@"
}
section() { printf '\n===== %s =====\n' "$*"; }

cleanup

section "a base image from Debian's static busybox (no registry needed)"
step bootstrap busybox
step images

section "a container in the foreground: its exit code is ours"
step run --rm --name demo-hello busybox sh -c 'echo "hello from $(hostname)"; exit 3' || echo "(exit code $?)"

section "confinement, seen from inside (Docker's defaults)"
step run --rm busybox sh -c 'grep -E "^(CapEff|Seccomp|NoNewPrivs)" /proc/self/status; \
  echo x > /proc/sys/kernel/hostname 2>&1 || true; ip -o link | cut -d" " -f2; id'
step run --rm --user 1000:1000 --cap-drop ALL --read-only --memory 64m --pids-limit 32 busybox \
  sh -c 'id; grep CapEff /proc/self/status; touch /x 2>&1 || true; cat /sys/fs/cgroup/pids/pids.max'

section "a detached container: ps, logs, exec, stats, stop, rm"
step volume create demo-data
step run -d --name demo-web -v demo-data:/data busybox \
  sh -c 'i=0; while true; do i=$((i+1)); echo "tick $i" | tee -a /data/ticks; sleep 0.2; done'
sleep 1
step ps
step logs --tail 3 demo-web
step exec demo-web sh -c 'wc -l < /data/ticks; ps -o pid,comm'
step stats --no-stream demo-web
step stop -t 1 demo-web
step ps -a --filter name=demo-web
step rm demo-web

section "the volume outlived its container"
step run --rm -v demo-data:/data busybox sh -c 'echo "$(wc -l < /data/ticks) ticks kept"'
step volume rm demo-data

section "the container diet (seeds 000, 001): one program, three images"
# Debian's packages are the only registry here: a toolchain image and a base, bootstrapped
# once (about 20 s each) and kept in the demo's store, so a second demo starts at once.
for spec in "localhost/toolchain:latest --include gcc,musl-tools,libc6-dev" "localhost/debian:bookworm"; do
    name=${spec%% *}
    if ! "${SJ[@]}" image inspect "$name" >/dev/null 2>&1; then
        # shellcheck disable=SC2086  # the --include flag, when there is one
        step bootstrap debian ${spec#"$name"} "$name"
    fi
done
step build -t hello:scratch -f examples/hello/Containerfile.scratch examples/hello
step build -q -t hello:busybox -f examples/hello/Containerfile.busybox examples/hello
step build -q -t hello:glibc -f examples/hello/Containerfile.glibc examples/hello
step run --rm hello:scratch
step run --rm hello:busybox
step run --rm hello:glibc
step images
step history hello:scratch
step system df


section "a network: a published port, and names between containers"
PORT=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
step network create demo-net
step run -d --name demo-httpd --network demo-net --network-alias www -p "127.0.0.1:$PORT:80" \
  busybox sh -c 'mkdir /www && echo "served by $(hostname)" > /www/index.html && httpd -f -h /www'
step port demo-httpd
sleep 0.5
printf '\n$ curl http://127.0.0.1:%s/\n' "$PORT"
curl -s "http://127.0.0.1:$PORT/"
step run --rm --network demo-net busybox wget -qO- http://www/
IP=$("${SJ[@]}" inspect -f '{{(index .NetworkSettings.Networks "demo-net").IPAddress}}' demo-httpd)
step run --rm busybox sh -c "timeout 2 wget -qO- http://$IP/ 2>&1 || echo '(the default network cannot reach demo-net)'"
step rm -f demo-httpd
step network rm demo-net

section "a registry round trip: push, pull, run"
mkdir -p build/demo/registry
RPORT=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > build/demo/registry/config.yml <<EOF
version: 0.1
storage: {filesystem: {rootdirectory: $PWD/build/demo/registry/data}}
http: {addr: 127.0.0.1:$RPORT}
EOF
docker-registry serve build/demo/registry/config.yml >/dev/null 2>&1 &
REGISTRY_PID=$!
for _ in $(seq 50); do curl -s "http://127.0.0.1:$RPORT/v2/" >/dev/null && break; sleep 0.1; done
step push hello:scratch "127.0.0.1:$RPORT/demo/hello:scratch"
step rmi hello:scratch
step pull "127.0.0.1:$RPORT/demo/hello:scratch"
step run --rm "127.0.0.1:$RPORT/demo/hello:scratch"
step tag "127.0.0.1:$RPORT/demo/hello:scratch" hello:scratch
step rmi "127.0.0.1:$RPORT/demo/hello:scratch"
