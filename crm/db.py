"""The one way to reach the database: an async engine and a session factory.

SQLite (aiosqlite, WAL mode) by default; PostgreSQL (asyncpg) in production.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SessionFactory = async_sessionmaker[AsyncSession]
T = TypeVar("T")
log = logging.getLogger(__name__)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")  # other processes (the CLI) wait, not fail
    cursor.close()


def create_engine(url: str, *, echo: bool = False, readers: int = 0) -> AsyncEngine:
    """Build the async engine; for SQLite create the folder and switch on WAL and foreign keys.

    ``readers``: for SQLite, an engine of that many read-only connections instead (WAL lets
    them read while the one writer writes); for PostgreSQL the usual pool.
    """
    parsed = make_url(url)
    # hide_parameters: message texts must not reach the log with an SQL error.
    kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # SQLite has one write lock per file. Several pooled connections queue for it with
        # busy-timeout sleeps and can still fail with "database is locked"; one connection per
        # process serialises every transaction in order instead (measured: docs/BENCHMARKS.md).
        kwargs.update(pool_size=max(readers, 1), max_overflow=0, pool_timeout=120)
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_async_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        if readers:
            event.listen(engine.sync_engine, "connect", _read_only)
    return engine


def _read_only(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def session_scope(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on error. Services only flush."""
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


def is_transient(error: BaseException) -> bool:
    """The database is unreachable or busy for a moment (a restart, a dropped connection):
    the same work can simply be tried again."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(error, OperationalError | InterfaceError | PoolTimeout):
        return True
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, ConnectionError | TimeoutError):
        return True
    name = type(error).__name__
    # asyncpg's own errors when the server goes away, if they escape SQLAlchemy's wrapping
    return name in {"ConnectionDoesNotExistError", "CannotConnectNowError", "AdminShutdownError"}


async def retry_transient(
    work: Callable[[], Awaitable[T]],
    *,
    what: str,
    first_delay: float = 0.2,
    max_delay: float = 5.0,
) -> T:
    """Run ``work`` until it succeeds or fails for a reason other than a transient database
    problem; while the database is away, processing pauses here and resumes by itself."""
    delay = first_delay
    warned = False
    while True:
        try:
            result = await work()
        except Exception as exc:
            if not is_transient(exc):
                raise
            if not warned:
                log.warning(
                    "database unavailable while %s (%s); retrying", what, type(exc).__name__
                )
                warned = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
            continue
        if warned:
            log.info("database back; %s resumed", what)
        return result
