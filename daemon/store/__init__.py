"""The store: one interface, SQLite and PostgreSQL backends, versioned migrations."""
