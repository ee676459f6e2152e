"""Results store: one row per run, SQLite under ``runs/`` or any SQLAlchemy URL.

Leaderboards are rendered from here, never from memory. A row holds the run's identity,
metrics per subset, per-case target ranks (so means, spreads and paired tests can be
recomputed), timings, and the package and plugin versions that produced it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

DEFAULT_URL = "sqlite:///runs/results.db"
JSON_FIELDS = ("params", "metrics", "valid_metrics", "extra_metrics", "ranks", "case_labels", "info",
               "package_versions", "plugin_versions")

metadata = sa.MetaData()
runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("run_key", sa.String(64), nullable=False, index=True),
    sa.Column("dataset", sa.String(200), nullable=False),
    sa.Column("split", sa.String(50), nullable=False),
    sa.Column("split_digest", sa.String(32), nullable=False),
    sa.Column("method", sa.String(200), nullable=False),
    sa.Column("seed", sa.Integer, nullable=False),
    sa.Column("profile", sa.String(50), nullable=False),
    sa.Column("exclude_seen", sa.Boolean, nullable=False),
    sa.Column("tuned_trials", sa.Integer, nullable=False, default=0),
    sa.Column("backbone", sa.String(200)),
    sa.Column("train_seconds", sa.Float),
    sa.Column("tokenizer_seconds", sa.Float),
    sa.Column("infer_seconds_per_1k", sa.Float),
    sa.Column("machine", sa.String(200)),
    sa.Column("command", sa.Text),
    *(sa.Column(name, sa.Text) for name in JSON_FIELDS),
)


claims = sa.Table(
    "claims",
    metadata,
    sa.Column("run_key", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("heartbeat", sa.Float, nullable=False),
)
# A claim whose owner sent no heartbeat for this long is taken over (its process died).
CLAIM_TIMEOUT = 120.0
HEARTBEAT_INTERVAL = 20.0


def run_key(row: dict[str, Any]) -> str:
    """Identity of a run: equal keys mean the same experiment (used to resume).

    It covers the data and split (digest), method, parameters, seed, profile, ranking
    protocol and the code hash of every plugin the method uses.
    """
    from benchmark.cache import content_hash

    parts = [row["dataset"], row["split"], row["split_digest"], row["method"], row["params"],
             row["seed"], row["profile"], row["exclude_seen"], row["code_hashes"]]
    # A tuned run is a different experiment even when the best trial equals the defaults.
    if row.get("tuned_trials"):
        parts.append(row["tuned_trials"])
    return content_hash(*parts)


class Store:
    """Append-only table of run results."""

    def __init__(self, url: str = DEFAULT_URL):
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.url = url
        self.engine = sa.create_engine(url)
        metadata.create_all(self.engine)

    def add(self, row: dict[str, Any], command: str = "", tuned_trials: int = 0) -> int:
        record = {k: v for k, v in row.items() if k not in JSON_FIELDS}
        record.update({k: json.dumps(row.get(k)) for k in JSON_FIELDS})
        record["run_key"] = run_key({**row, "tuned_trials": tuned_trials,
                                     "code_hashes": row["info"]["code_hashes"]})
        record["created_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        record["command"] = command
        record["tuned_trials"] = tuned_trials
        with self.engine.begin() as conn:
            return conn.execute(runs.insert().values(**record)).inserted_primary_key[0]

    def insert_archived(self, row: dict[str, Any]) -> bool:
        """Insert a row read from a results archive unless its run key is here; True if added."""
        if self.has(row["run_key"]):
            return False
        record = {k: v for k, v in row.items() if k not in JSON_FIELDS and k != "id"}
        record.update({k: json.dumps(row.get(k)) for k in JSON_FIELDS})
        with self.engine.begin() as conn:
            conn.execute(runs.insert().values(**record))
        return True

    # ------------------------------------------------------------------ claims

    @staticmethod
    def owner() -> str:
        return f"{socket.gethostname()}:{os.getpid()}"

    def claim(self, key: str) -> str | None:
        """Claim run ``key`` for this process; ``None`` on success, else the live owner.

        Concurrent ``run`` commands on one store claim a run before fitting it, so no run
        key is fitted twice. A claim is kept alive by :meth:`heartbeat`; one whose owner
        stopped beating for :data:`CLAIM_TIMEOUT` seconds, or whose process is gone from
        this host, is taken over.
        """
        me, now = self.owner(), time.time()
        with self.engine.begin() as conn:
            try:
                conn.execute(claims.insert().values(run_key=key, owner=me, heartbeat=now))
                return None
            except sa.exc.IntegrityError:
                pass
        with self.engine.begin() as conn:
            held = conn.execute(sa.select(claims).where(claims.c.run_key == key)).first()
            if held is None:
                return self.claim(key)
            if held.owner != me and _alive(held.owner, held.heartbeat, now):
                return held.owner
            taken = conn.execute(
                claims.update()
                .where((claims.c.run_key == key) & (claims.c.owner == held.owner)
                       & (claims.c.heartbeat == held.heartbeat))
                .values(owner=me, heartbeat=now)
            ).rowcount
        return None if taken == 1 else self.claim(key)

    def heartbeat(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(claims.update().where((claims.c.run_key == key) & (claims.c.owner == self.owner()))
                         .values(heartbeat=time.time()))

    def release(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(claims.delete().where((claims.c.run_key == key) & (claims.c.owner == self.owner())))

    @contextlib.contextmanager
    def claimed(self, key: str):
        """Hold the claim on ``key`` (heartbeat in a background thread) for the block."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(HEARTBEAT_INTERVAL):
                self.heartbeat(key)

        thread = threading.Thread(target=beat, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            self.release(key)

    def has(self, key: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(runs.c.id).where(runs.c.run_key == key)).first() is not None

    def rows(self, **filters: Any) -> list[dict[str, Any]]:
        query = sa.select(runs).order_by(runs.c.id)
        for name, value in filters.items():
            if value is not None:
                query = query.where(runs.c[name] == value)
        with self.engine.connect() as conn:
            result = [dict(r._mapping) for r in conn.execute(query)]
        for row in result:
            for name in JSON_FIELDS:
                row[name] = json.loads(row[name]) if row[name] is not None else None
        return result

    def combinations(self) -> list[tuple[str, str]]:
        """Distinct (dataset, split) pairs present in the store."""
        query = sa.select(runs.c.dataset, runs.c.split).distinct().order_by(runs.c.dataset)
        with self.engine.connect() as conn:
            return [(r.dataset, r.split) for r in conn.execute(query)]


def _alive(owner: str, heartbeat: float, now: float) -> bool:
    """Whether a claim's owner still runs: a process of this host must exist, any owner must
    have beaten within :data:`CLAIM_TIMEOUT`."""
    if now - heartbeat > CLAIM_TIMEOUT:
        return False
    host, _, pid = owner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    return True
