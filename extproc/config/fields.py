"""What every config model shares: the strict, frozen base model, names, address checks."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
_HOST_PORT = re.compile(r"^(?P<host>[A-Za-z0-9_.\-]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")


def check_address(value: str, *, allow_unix: bool) -> str:
    if allow_unix and value.startswith("unix:"):
        if len(value) <= len("unix:"):
            raise ValueError("expected unix:/path/to/socket")
        return value
    match = _HOST_PORT.match(value)
    if not match or not 0 < int(match["port"]) < 65536:
        expected = "host:port" + (" or unix:/path" if allow_unix else "")
        raise ValueError(f"expected {expected}, got {value!r}")
    return value


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8, ::1, or ::ffff:127.x (an IPv4 peer on an IPv6 socket)."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def each_once(values: list[str]) -> list[str]:
    duplicates = sorted({value for value in values if values.count(value) > 1})
    if duplicates:
        raise ValueError(f"expected each entry once; repeated: {', '.join(duplicates)}")
    return values
