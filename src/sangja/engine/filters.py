"""Docker's `--filter KEY=VALUE` for `ps`, `images` and every `prune`: which keys each
command knows, Docker's errors for the ones it does not (exit 1, or 125 for a filter that
is not KEY=VALUE or a prune filter the daemon refuses), and the tests each key makes. The
CLI and the API parse and print; the deciding is here."""

from __future__ import annotations

from ..errors import SangjaError

PS_KEYS = frozenset({"id", "name", "label", "status", "exited", "ancestor", "before", "since",
                     "volume", "network", "publish", "expose", "health", "isolation",
                     "is-task"})
IMAGES_KEYS = frozenset({"dangling", "label", "before", "since", "reference", "until"})
# What Docker's daemon accepts in each prune (moby daemon/prune.go, volumes/service: a
# volume has no until=; build cache entries have no labels: label= spares them all).
PRUNE_KEYS = {
    "container": frozenset({"label", "label!", "until"}),
    "network": frozenset({"label", "label!", "until"}),
    "volume": frozenset({"label", "label!", "all"}),
    "image": frozenset({"label", "label!", "until", "dangling"}),
    "build": frozenset({"label", "label!", "until"}),
}
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
HEALTH = ("starting", "healthy", "unhealthy", "none")


class FilterError(SangjaError):
    """A filter Docker's daemon refuses: exit 1, its wording."""

    engine_exit_code = 1


class FilterSyntaxError(SangjaError):
    """Not KEY=VALUE: Docker's CLI refuses the flag (exit 125)."""

    engine_exit_code = 125


def parse(values: list[str], keys: frozenset[str]) -> dict[str, list[str]]:
    """`--filter` values -> {key: [value, ...]}, refusing what Docker refuses."""
    out: dict[str, list[str]] = {}
    for v in values:
        key, eq, val = v.partition("=")
        key = key.strip().lower()
        if not eq:
            raise FilterSyntaxError(f'invalid argument "{v}" for "-f, --filter" flag: bad '
                                    "format of filter (expected name=value)")
        if key not in keys:
            raise FilterError(f"Invalid filter '{key}'")
        out.setdefault(key, []).append(val)
    return out


class PruneFilterError(SangjaError):
    """A prune filter Docker's daemon refuses (its wording): exit 125, HTTP 400."""

    engine_exit_code = 125


def match_labels(labels: dict[str, str], wanted: list[str]) -> bool:
    """label=KEY or label=KEY=VALUE: every one must match (Docker's AND)."""
    for w in wanted:
        k, eq, v = w.partition("=")
        if k not in labels or (eq and labels[k] != v):
            return False
    return True


def parse_bool(key: str, values: list[str]) -> bool:
    for v in values:
        if v.lower() not in ("true", "false", "1", "0"):
            raise FilterError(f"Invalid filter '{key}=[{v}]'")
    return values[-1].lower() in ("true", "1")


# ---------------------------------------------------------------------------- containers


def _ports(spec: str) -> set[str]:
    """"80", "80/udp", "8000-8002/tcp" -> {"80/tcp"}, ... as Docker's nat.ParsePortRange."""
    port, _, proto = spec.partition("/")
    proto = proto or "tcp"
    lo, dash, hi = port.partition("-")
    try:
        a, b = int(lo), int(hi) if dash else int(lo)
    except ValueError:
        raise FilterError(f"invalid port {spec!r}") from None
    if not 0 < a <= b <= 65535:
        raise FilterError(f"invalid port {spec!r}")
    return {f"{p}/{proto}" for p in range(a, b + 1)}


class ContainerFilter:
    """`ps --filter`: built once (it resolves since/before to containers), then asked about
    each container. `entry` is sangja.engine.inspect.ps_entry's row; the engine and the
    database row give what the entry does not show."""

    def __init__(self, engine, filters: dict[str, list[str]]):
        self.f = filters
        for s in filters.get("status", []):
            if s not in STATUSES:
                raise FilterError(f"Invalid filter 'status={s}'")
        for h in filters.get("health", []):
            if h not in HEALTH:
                raise FilterError(f"Unrecognised filter value for health: {h}")
        for e in filters.get("exited", []):
            if not e.lstrip("-").isdigit():
                raise FilterError(f"invalid filter 'exited={e}'")
        self.before = self._created(engine, filters.get("before"))
        self.since = self._created(engine, filters.get("since"))
        self.publish = set().union(*map(_ports, filters.get("publish", [])))
        self.expose = set().union(*map(_ports, filters.get("expose", [])))

    @staticmethod
    def _created(engine, refs: list[str] | None) -> float | None:
        if not refs:
            return None
        from .records import NoSuchContainer

        try:
            return engine.get(refs[-1])["created"]
        except NoSuchContainer:
            raise FilterError(f"no such container {refs[-1]}") from None

    @property
    def shows_stopped(self) -> bool:
        """Filters that make `ps` list stopped containers without -a (as Docker)."""
        return any(k in self.f for k in ("status", "exited"))

    def __call__(self, engine, row, entry: dict) -> bool:
        f = self.f
        if "id" in f and not any(entry["ID"].startswith(v) for v in f["id"]):
            return False
        if "name" in f and not any(_name_matches(v, entry["Names"]) for v in f["name"]):
            return False
        if "label" in f and not match_labels(entry["_labels"], f["label"]):
            return False
        if "status" in f and entry["State"] not in f["status"]:
            return False
        if "exited" in f and not (entry["State"] == "exited"
                                  and str(entry["ExitCode"]) in f["exited"]):
            return False
        if "ancestor" in f and not any(
                v in (entry["Image"], entry["ImageID"]) or entry["ImageID"].startswith(
                    "sha256:" + v) or _same_repo(v, entry["Image"]) for v in f["ancestor"]):
            return False
        if self.before is not None and not row["created"] < self.before:
            return False
        if self.since is not None and not row["created"] > self.since:
            return False
        if "isolation" in f and not any(v in ("", "default") for v in f["isolation"]):
            return False
        if "is-task" in f and parse_bool("is-task", f["is-task"]):
            return False
        if "health" in f:
            from .inspect import container_state

            health = (container_state(engine.paths, row).get("Health") or {}).get("Status")
            if (health or "none") not in f["health"]:
                return False
        if "volume" in f or "network" in f:
            opts = engine.options(row)
            if "volume" in f and not any(
                    v in (m.source, m.target) for m in opts.mounts
                    if m.type in ("bind", "volume") for v in f["volume"]):
                return False
            if "network" in f:
                nets = {opts.network, *(n.name for n in opts.extra_networks)}
                if not nets & set(f["network"]):
                    return False
        if self.publish or self.expose:
            published, exposed = _port_sets(engine, row, entry)
            if not (self.publish & published or self.expose & exposed):
                return False
        return True


def _name_matches(pattern: str, name: str) -> bool:
    """Docker matches names as a regular expression (unanchored)."""
    import re

    try:
        return re.search(pattern, name) is not None or re.search(pattern, "/" + name) is not None
    except re.error:
        return pattern in name


def _same_repo(ancestor: str, image: str) -> bool:
    """ancestor=busybox matches busybox:latest (a name without a tag means :latest)."""
    if ":" in ancestor.rpartition("/")[2]:
        return False
    return image in (f"{ancestor}:latest",) or image.endswith(f"/{ancestor}:latest")


def _port_sets(engine, row, entry: dict) -> tuple[set[str], set[str]]:
    """(host ports, container ports) a running container publishes, as "PORT/PROTO"; Docker
    compares publish= with the public side and expose= with the private side."""
    if entry["State"] not in ("running", "paused"):
        return set(), set()
    from ..network.attach import read_state

    published, exposed = set(), set()
    for m in (read_state(engine.paths.runroot, row["id"]) or {}).get("ports") or []:
        for i in range(m.get("range", 1)):
            published.add(f"{m['host_port'] + i}/{m['protocol']}")
            exposed.add(f"{m['container_port'] + i}/{m['protocol']}")
    return published, exposed


# ---------------------------------------------------------------------------- images


def reference_matches(pattern: str, repository: str, tag: str) -> bool:
    """Docker's reference filter: the pattern (path.Match's glob: `*` stops at `/`) against
    "NAME:TAG" and "NAME", NAME as Docker shows it (docker.io/library/ dropped)."""
    if repository == "<none>":
        return False
    name = repository
    for prefix in ("docker.io/library/", "docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    candidates = [name] if tag == "<none>" else [f"{name}:{tag}", name]
    return any(_path_match(pattern, c) for c in candidates)


def _path_match(pattern: str, name: str) -> bool:
    """Go's path.Match: `*` and `?` never match `/`, `[...]` classes, `\\` escapes."""
    import re

    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                return False
            body = pattern[i + 1:j]
            if body.startswith("^"):
                body = "!" + body[1:]
            out.append("[" + ("^/" + re.escape(body[1:]) if body.startswith("!")
                              else re.escape(body)).replace("\\-", "-") + "]")
            i = j
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.fullmatch("".join(out), name) is not None


def timestamp(value: str) -> float:
    """until= / --since: a Unix time, an RFC 3339 date, or a duration before now ("10m")."""
    from .logs import parse_timestamp

    try:
        return parse_timestamp(value)
    except ValueError as e:
        raise FilterError(str(e)) from None


class ImageFilter:
    """`images --filter` over ImageStore.images() rows."""

    def __init__(self, store, filters: dict[str, list[str]]):
        from ..image.db import ImageNotFound

        self.store = store
        self.f = filters
        self.dangling = parse_bool("dangling", filters["dangling"]) if "dangling" in filters \
            else None
        self.labels: dict[str, dict] = {}
        self.before = self.since = None
        try:
            if "before" in filters:
                self.before = _created(store.resolve(filters["before"][-1]).created)
            if "since" in filters:
                self.since = _created(store.resolve(filters["since"][-1]).created)
        except ImageNotFound as e:
            ref = e.ref if ":" in e.ref.rpartition("/")[2] or "@" in e.ref else f"{e.ref}:latest"
            raise FilterError(f"No such image: {ref}") from None
        self.until = timestamp(filters["until"][-1]) if "until" in filters else None

    def image_labels(self, image_id: str) -> dict[str, str]:
        if image_id not in self.labels:
            config = self.store.config(image_id).get("config") or {}
            self.labels[image_id] = config.get("Labels") or {}
        return self.labels[image_id]

    def __call__(self, row: dict) -> bool:
        f = self.f
        untagged = row["repository"] == "<none>"
        if self.dangling is not None and untagged != self.dangling:
            return False
        if "reference" in f and not any(reference_matches(p, row["repository"], row["tag"])
                                        for p in f["reference"]):
            return False
        created = _created(row["created"])
        if self.before is not None and not created < self.before:
            return False
        if self.since is not None and not created > self.since:
            return False
        if self.until is not None and not created < self.until:
            return False
        if "label" in f and not match_labels(self.image_labels(row["id"]), f["label"]):
            return False
        return True


def _created(value) -> float:
    """An image's creation time (an RFC 3339 string or a number) as a Unix time."""
    if isinstance(value, int | float):
        return float(value)
    from ..humanize import parse_time

    return parse_time(value) or 0.0


# ---------------------------------------------------------------------------- prune


def prune_filters(values: list[str]) -> dict[str, list[str]]:
    """The CLI's `--filter KEY=VALUE` flags of a prune -> {key: [value, ...]}; which keys a
    prune accepts is PruneFilter's to say (the daemon's, in Docker)."""
    out: dict[str, list[str]] = {}
    for v in values:
        key, eq, val = v.partition("=")
        if not eq:
            raise FilterSyntaxError(f'invalid argument "{v}" for "--filter" flag: bad '
                                    "format of filter (expected name=value)")
        out.setdefault(key.strip().lower(), []).append(val)
    return out


def _prune_bool(key: str, values: list[str]) -> bool:
    for v in values:
        if v.lower() not in ("true", "false", "1", "0"):
            raise PruneFilterError(f"invalid filter '{key}={v}'")
    return values[-1].lower() in ("true", "1")


class PruneFilter:
    """Docker's prune filters, for every kind of object (`kind`: a PRUNE_KEYS key): an
    object goes only when it was created before until= (a Unix time, an RFC 3339 date or
    a Go duration before now), has every label= (KEY or KEY=VALUE), and does not match all
    of the label!= ones (moby's matchLabels). `all` (volumes) and `dangling` (images) are
    read here and acted on by their prune. Built from the CLI's flags (prune_filters) or
    the API's `filters`; refuses what the daemon refuses, before anything is removed."""

    def __init__(self, kind: str, filters: dict[str, list[str]] | None = None):
        filters = {k: v for k, v in (filters or {}).items() if v}
        for key in filters:
            if key not in PRUNE_KEYS[kind]:
                raise PruneFilterError(f"invalid filter '{key}'")
        self.kind = kind
        self.labels = filters.get("label", [])
        self.not_labels = filters.get("label!", [])
        self.until: float | None = None
        if "until" in filters:
            if len(filters["until"]) > 1:
                raise PruneFilterError("more than one until filter specified")
            try:
                self.until = timestamp(filters["until"][0])
            except FilterError as e:
                raise PruneFilterError(str(e)) from None
        self.all = _prune_bool("all", filters["all"]) if "all" in filters else None
        self.dangling = _prune_bool("dangling", filters["dangling"]) \
            if "dangling" in filters else None
        self.given = {k: list(v) for k, v in filters.items()}

    def __bool__(self) -> bool:
        """Whether it filters anything (all=/dangling= only choose what prune considers)."""
        return bool(self.labels or self.not_labels or self.until is not None)

    def __call__(self, created: float, labels: dict[str, str] | None) -> bool:
        """Whether an object created at `created` (Unix time) with `labels` may go."""
        labels = labels or {}
        if self.until is not None and created > self.until:
            return False
        if self.labels and not match_labels(labels, self.labels):
            return False
        if self.not_labels and match_labels(labels, self.not_labels):
            return False
        return True

    def image_selector(self, store):
        """For sangja.image.gc.prune_images: an Image record -> may it go (its creation
        time and its config's labels)."""
        def select(img) -> bool:
            labels = None
            if self.labels or self.not_labels:
                labels = (store.config(img.id).get("config") or {}).get("Labels")
            return self(_created(img.created), labels)

        return select
