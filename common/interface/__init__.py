"""The contract of the control socket: the ``io.paragon.License`` varlink interface.

Three parts, shared by the daemon, ctl, tests and any other client: the interface
file ``io.paragon.License.varlink`` (the reference), ``errors`` (each error with its
name, parameters, ctl exit code and sentence; standard library only, so ctl can
import it without paying for msgspec) and ``wire`` (the typed parameters and
replies as msgspec Structs). Nothing here imports the daemon.
"""
