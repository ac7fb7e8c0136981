"""Helpers shared by the tests: real processes (portal, daemon, SMTP, PostgreSQL) and their wiring."""
