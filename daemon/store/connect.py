"""Open the store a configuration names: SQLite by default, PostgreSQL for clusters."""

from __future__ import annotations

import urllib.parse

from paragon_licensed.daemon.config import Config
from paragon_licensed.daemon.store.db import Database


def open_database(config: Config) -> Database:
    url = config.store_url
    if url.startswith("sqlite://"):
        from paragon_licensed.daemon.store.sqlite import SqliteBackend

        return Database(SqliteBackend(url.removeprefix("sqlite://"), config.store.busy_timeout))
    from paragon_licensed.daemon.store.postgres import PostgresBackend

    return Database(
        PostgresBackend(
            url,
            config.store.password_file,
            config.store.busy_timeout,
            idle_in_transaction=config.cluster.lease,
        )
    )


_SECRET_PARAMETERS = frozenset({"password", "sslpassword"})


def describe_url(url: str) -> str:
    """The store URL without any password (in the user part or a query parameter), for logs."""
    if not url.startswith(("postgresql://", "postgres://")):
        return url
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        netloc = f"{userinfo.split(':', 1)[0]}@{host}"
    query = urllib.parse.urlencode(
        [
            (key, "***" if key.lower() in _SECRET_PARAMETERS else value)
            for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*",
    )
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
