"""The control socket: varlink framing, the server, and one handler per method."""
