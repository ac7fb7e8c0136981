"""Open the store a configuration names: SQLite by default, PostgreSQL for clusters."""

from __future__ import annotations

from paragon_licensed.daemon.config import Config
from paragon_licensed.daemon.store.db import Database


def open_database(config: Config) -> Database:
    url = config.store_url
    if url.startswith("sqlite://"):
        from paragon_licensed.daemon.store.sqlite import SqliteBackend

        return Database(SqliteBackend(url.removeprefix("sqlite://"), config.store.busy_timeout))
    from paragon_licensed.daemon.store.postgres import PostgresBackend

    return Database(PostgresBackend(url, config.store.password_file, config.store.busy_timeout))


def describe_url(url: str) -> str:
    """The store URL without any password, for logs and status."""
    if "://" not in url or "@" not in url.split("://", 1)[1].split("/", 1)[0]:
        return url
    scheme, rest = url.split("://", 1)
    userinfo, host = rest.split("@", 1)
    return f"{scheme}://{userinfo.split(':', 1)[0]}@{host}"
