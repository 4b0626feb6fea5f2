"""Networks and IP leases in SQLite (`R/networks.db`).

A network is one row with its definition as JSON (the shape is `config.new_network`'s).
A lease is (network, address) -> container: the primary key makes two containers holding
one address impossible whatever the number of concurrent starts, and a crash before
COMMIT leaves no lease. A lease lives from a container's network set-up until its
teardown; a lease whose container is gone or stopped is a leftover that `system check`
reports and `--repair` releases."""

from __future__ import annotations

import os
import sqlite3
import time

from ..errors import SangjaError
from ..sqlite import SQLiteDB

_SCHEMA_V1 = """
CREATE TABLE networks (
    name    TEXT PRIMARY KEY,
    id      TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    doc     TEXT NOT NULL               -- the definition, as JSON
);
CREATE TABLE leases (
    network      TEXT NOT NULL REFERENCES networks(id),
    address      TEXT NOT NULL,
    container_id TEXT NOT NULL,
    leased       REAL NOT NULL,
    PRIMARY KEY (network, address)
);
CREATE INDEX leases_container ON leases(container_id)
"""


class NetworkError(SangjaError):
    engine_exit_code = 125


class NoSuchNetwork(NetworkError, LookupError):
    def __init__(self, ref: str):
        super().__init__(f"network {ref} not found")


class NetworkDB(SQLiteDB):
    MIGRATIONS = [_SCHEMA_V1]
    KIND = "network database"
    SYNCHRONOUS = "NORMAL"  # leases describe live state, gone at a reboot anyway
    CONTENT = ()
    REBUILD = "start an empty one (the default network is made again)"

    # -- networks ------------------------------------------------------------------------
    def get(self, ref: str) -> dict:
        """A network by name, full id or unique id prefix."""
        from ..jsonio import loads

        row = self.conn.execute("SELECT doc FROM networks WHERE name = ? OR id = ?",
                                (ref, ref)).fetchone()
        if row is None and len(ref) >= 3 and all(c in "0123456789abcdef" for c in ref):
            rows = self.conn.execute("SELECT doc FROM networks WHERE id LIKE ?",
                                     (ref + "%",)).fetchall()
            if len(rows) > 1:
                raise NetworkError(f"network {ref} is ambiguous ({len(rows)} matches)")
            row = rows[0] if rows else None
        if row is None:
            raise NoSuchNetwork(ref)
        return loads(row["doc"])

    def all(self) -> list[dict]:
        from ..jsonio import loads

        return [loads(r["doc"]) for r in
                self.conn.execute("SELECT doc FROM networks ORDER BY created, name")]

    def insert(self, net: dict) -> None:
        from ..jsonio import dumps

        try:
            with self.transaction() as c:
                c.execute("INSERT INTO networks (name, id, created, doc) VALUES (?, ?, ?, ?)",
                          (net["name"], net["id"], net["created"], dumps(net)))
        except sqlite3.IntegrityError:
            raise NetworkError(f"network with name {net['name']} already exists") from None

    def save(self, net: dict) -> None:
        from ..jsonio import dumps

        with self.transaction() as c:
            c.execute("UPDATE networks SET doc = ? WHERE id = ?", (dumps(net), net["id"]))

    def delete(self, net_id: str) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM networks WHERE id = ?", (net_id,))

    # -- leases --------------------------------------------------------------------------
    def leases(self, net_id: str | None = None) -> list[sqlite3.Row]:
        if net_id is None:
            return self.conn.execute("SELECT * FROM leases ORDER BY network, leased").fetchall()
        return self.conn.execute("SELECT * FROM leases WHERE network = ? ORDER BY leased",
                                 (net_id,)).fetchall()

    def container_leases(self, cid: str) -> list[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM leases WHERE container_id = ?",
                                 (cid,)).fetchall()

    def release(self, cid: str, net_id: str | None = None) -> None:
        with self.transaction() as c:
            if net_id is None:
                c.execute("DELETE FROM leases WHERE container_id = ?", (cid,))
            else:
                c.execute("DELETE FROM leases WHERE container_id = ? AND network = ?",
                          (cid, net_id))

    def lease(self, net: dict, cid: str, wanted: dict[int, str]) -> list[str]:
        """One address per subnet of `net` for `cid` (its existing leases kept): the one
        asked for in `wanted` (IP version -> address), else the lowest free one in the
        subnet's range. In one write transaction, so concurrent starts never share one."""
        from . import ipam

        with self.transaction() as c:
            held = {r["address"] for r in c.execute(
                "SELECT address FROM leases WHERE network = ? AND container_id = ?",
                (net["id"], cid))}
            used = {r["address"] for r in c.execute(
                "SELECT address FROM leases WHERE network = ?", (net["id"],))}
            out = []
            for sub in net["subnets"]:
                mine = [a for a in held if ipam.contains(sub, a)]
                if mine:
                    out.append(mine[0])
                    continue
                addr = ipam.address(sub, used, wanted)
                c.execute("INSERT INTO leases (network, address, container_id, leased) "
                          "VALUES (?, ?, ?, ?)", (net["id"], addr, cid, time.time()))
                used.add(addr)
                out.append(addr)
            return out


def open_networks(root: str) -> NetworkDB:
    return NetworkDB(os.path.join(root, "networks.db"))
