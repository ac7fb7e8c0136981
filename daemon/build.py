"""The installed product build: `product.build`, or the first line of `product.build_file`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from paragon_licensed.daemon.config import ProductConfig

_BUILD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")


@dataclass(frozen=True)
class Build:
    value: str | None
    problem: str | None  # why the build is unknown, naming the key to set
    key: str


def read_build(product: ProductConfig) -> Build:
    if product.build:
        if not _BUILD.match(product.build):
            return Build(None, f'product.build "{product.build}" is not a build number', "product.build")
        return Build(product.build, None, "product.build")
    key = "product.build_file"
    try:
        with open(product.build_file, encoding="utf-8") as handle:
            first = handle.readline().strip()
    except FileNotFoundError:
        return Build(None, f"{key} {product.build_file} does not exist", key)
    except (OSError, UnicodeDecodeError) as exc:
        return Build(None, f"{key} {product.build_file} cannot be read ({exc})", key)
    if not _BUILD.match(first):
        return Build(None, f"{key} {product.build_file} does not hold a build number", key)
    return Build(first, None, key)
