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
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from benchmark.cache import content_hash
from benchmark.errors import StoreError
from benchmark.paths import file_problem, folder_problem

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

    It covers the data and split (digest), method, parameters (``info.key_params`` where
    the row has them: see :attr:`benchmark.methods.ResolvedMethod.key_params`), seed,
    profile, ranking protocol and the version (or source hash) of every plugin the method
    uses (``code_hashes``).
    """
    params = (row.get("info") or {}).get("key_params", row["params"])
    parts = [row["dataset"], row["split"], row["split_digest"], row["method"], params,
             row["seed"], row["profile"], row["exclude_seen"], row["code_hashes"]]
    # A tuned run is a different experiment even when the best trial equals the defaults.
    if row.get("tuned_trials"):
        parts.append(row["tuned_trials"])
    return content_hash(*parts)


def sqlite_file(url: str) -> Path | None:
    """The database file of a ``sqlite:///PATH`` URL; ``None`` for other URLs and in-memory ones."""
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:") \
            or parsed.database.startswith("file:"):
        return None
    return Path(parsed.database)


def open_database(url: str, option: str, create: bool = True) -> sa.Engine:
    """An engine for ``url``; every fault is a :class:`StoreError` naming ``option``, the URL
    (password hidden) and the mend. A SQLite file's folder is created when ``create``."""
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise StoreError(
            f"{option} {url!r} is not a database URL ({exc}); write sqlite:///PATH/results.db or a SQLAlchemy "
            "URL such as postgresql+psycopg2://USER:PASSWORD@HOST:5432/DB"
        ) from None
    shown = url if parsed.password is None else parsed.render_as_string(hide_password=True)
    path = sqlite_file(url)
    if path is not None:
        if not create and not path.is_file():
            raise StoreError(f"{option} {shown}: there is no database file {path}; check the path "
                             f"(`genrec-bench run {option} URL` creates one)")
        problem = folder_problem(path.parent)
        if problem is None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                problem = f"cannot create the folder {path.parent} ({exc.strerror})"
        problem = problem or file_problem(path)
        if problem:
            raise StoreError(f"{option} {shown}: {problem}; pick a database file in a writable folder")
    try:
        # SQLite's default 5 s wait for a lock is short when two workers write one file and
        # one of them is busy importing an archive; wait up to a minute instead.
        connect_args = {"timeout": 60} if path is not None else {}
        return sa.create_engine(url, connect_args=connect_args)
    except sa.exc.NoSuchModuleError:
        raise StoreError(
            f"{option} {shown}: SQLAlchemy has no dialect or driver {parsed.drivername!r}; use sqlite:///PATH, "
            "postgresql+psycopg2://..., or install the package that provides it"
        ) from None
    except ImportError as exc:
        raise StoreError(
            f"{option} {shown}: the driver of {parsed.drivername!r} is not installed ({exc}); install it or name "
            "an installed one (PostgreSQL: pip install -e '.[postgres]' and postgresql+psycopg2://...)"
        ) from None


def database_fault(option: str, url: str, exc: sa.exc.SQLAlchemyError) -> StoreError:
    """One line for a database that was found but cannot be used (unreadable file, no server)."""
    path = sqlite_file(url)
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    if path is not None and "not a database" in reason:
        return StoreError(f"{option} {url}: {path} is not a SQLite database ({reason}); point {option} at a "
                          "database or at a new file")
    if path is not None:
        return StoreError(f"{option} {url}: cannot open {path} ({reason}); make sure it is a writable file "
                          "in an existing folder, or pick another path")
    shown = sa.engine.make_url(url).render_as_string(hide_password=True)
    return StoreError(f"{option} {shown}: cannot use the database ({reason}); check that the server runs and "
                      "the host, port, database, user and password")


class Store:
    """Append-only table of run results.

    Any fault of ``url`` (not a URL, unknown dialect, missing driver, unwritable path, a
    file that is not a database, no server) is one :class:`StoreError` line. With
    ``create=False`` (``leaderboard``) nothing is created: a missing SQLite file or a
    database without results fails instead. A database whose ``runs`` or ``claims`` table
    has other columns than ours (another program's) is refused before anything is written.
    """

    def __init__(self, url: str = DEFAULT_URL, create: bool = True):
        self.url = url
        self.engine = open_database(url, "--store", create)
        try:
            check_schema(self.engine, url)
            if create:
                # Commands started together on a new store: another one can create a table
                # (or an index) between this one's check and its CREATE; the next pass finds
                # it. Each pass creates at least one missing table or meets one just created,
                # so a few passes settle any number of commands.
                for attempt in range(8):
                    try:
                        metadata.create_all(self.engine)
                        break
                    except sa.exc.OperationalError as exc:
                        if "already exists" not in str(exc) or attempt == 7:
                            raise
                        time.sleep(0.05 * (attempt + 1))
            elif not sa.inspect(self.engine).has_table(runs.name):
                raise StoreError(f"--store {url}: the database holds no results; check the URL "
                                 "(`genrec-bench run --store URL` creates them)")
        except sa.exc.SQLAlchemyError as exc:
            raise database_fault("--store", url, exc) from None

    def add(self, row: dict[str, Any], command: str = "", tuned_trials: int = 0) -> int:
        record = {k: v for k, v in row.items() if k not in JSON_FIELDS}
        record.update({k: json.dumps(row.get(k)) for k in JSON_FIELDS})
        record["run_key"] = run_key({**row, "tuned_trials": tuned_trials,
                                     "code_hashes": row["info"]["code_hashes"]})
        record["created_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        record["command"] = command
        record["tuned_trials"] = tuned_trials
        with self.engine.begin() as conn:
            # A forced re-run replaces the row of the same run key: one experiment, one row.
            conn.execute(runs.delete().where(runs.c.run_key == record["run_key"]))
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
                try:
                    self.heartbeat(key)
                except sa.exc.SQLAlchemyError as exc:
                    # A locked or briefly unreachable store must not end the heartbeat: the
                    # claim would go stale and another worker would fit the same run.
                    # The next beat retries; CLAIM_TIMEOUT spans several beats.
                    warnings.warn(f"run claim {key}: heartbeat failed ({exc.__class__.__name__}: "
                                  f"{str(exc).splitlines()[0]}); retrying in {HEARTBEAT_INTERVAL:.0f} s",
                                  RuntimeWarning, stacklevel=1)

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


def check_schema(engine: sa.Engine, url: str) -> None:
    """A :class:`StoreError` when a table named like ours (``runs``, ``claims``) exists with
    other columns: the database belongs to another program (or another schema), and adding
    our tables to it or writing rows would fail in SQL or spoil it. Reads only."""
    inspector = sa.inspect(engine)
    existing = set(inspector.get_table_names())
    for table, what in ((runs, "results"), (claims, "claims")):
        if table.name not in existing:
            continue
        found = {column["name"] for column in inspector.get_columns(table.name)}
        ours = set(table.columns.keys())
        if found == ours:
            continue
        differences = []
        if found - ours:
            differences.append(f"unknown {_some(found - ours)}")
        if ours - found:
            differences.append(f"lacks {_some(ours - found)}")
        shown = sa.engine.make_url(url).render_as_string(hide_password=True)
        raise StoreError(f"--store {shown}: its table {table.name!r} is not a genrec-bench {what} table (columns "
                         f"{', '.join(sorted(found))}; {'; '.join(differences)}); point --store at a genrec-bench "
                         "results database or at a new file")


def _some(names: set[str], shown: int = 5) -> str:
    ordered = sorted(names)
    more = f" and {len(ordered) - shown} more" if len(ordered) > shown else ""
    return ", ".join(ordered[:shown]) + more


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
