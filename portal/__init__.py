"""The reference License Portal: portal API v1, order database, offline processing."""
