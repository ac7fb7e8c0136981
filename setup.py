"""Map the repository's folders to the paragon_licensed import packages.

The folders stay short (daemon/, ctl/, portal/) while nothing top-level named
``daemon`` or ``ctl`` is ever installed: everything lives under paragon_licensed.
"""

from setuptools import setup

setup(
    packages=[
        "paragon_licensed",
        "paragon_licensed.interface",
        "paragon_licensed.daemon",
        "paragon_licensed.daemon.control",
        "paragon_licensed.daemon.store",
        "paragon_licensed.daemon.store.migrations",
        "paragon_licensed.ctl",
        "paragon_licensed.portal",
    ],
    package_dir={
        "paragon_licensed": "common",
        "paragon_licensed.interface": "common/interface",
        "paragon_licensed.daemon": "daemon",
        "paragon_licensed.daemon.control": "daemon/control",
        "paragon_licensed.daemon.store": "daemon/store",
        "paragon_licensed.daemon.store.migrations": "daemon/store/migrations",
        "paragon_licensed.ctl": "ctl",
        "paragon_licensed.portal": "portal",
    },
    package_data={
        "paragon_licensed": ["py.typed"],
        "paragon_licensed.interface": ["*.varlink"],
        "paragon_licensed.daemon.store.migrations": ["*.sql"],
    },
    zip_safe=False,
)
