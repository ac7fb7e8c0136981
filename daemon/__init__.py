"""The daemon: identity, store, licenses, cluster, tenant processing and the control socket."""
