"""Where a host is reached through: the `[user@]host[:port]` grammar of a jump host."""

from __future__ import annotations

from dataclasses import dataclass

# --------------------------------------------------------------------------------------------
# Pure helpers


@dataclass(frozen=True)
class JumpSpec:
    """A jump host given as ``[user@]host[:port]`` (IPv6 in brackets: ``[::1]:2220``)."""

    address: str
    user: str | None = None
    port: int | None = None


def parse_jump_spec(spec: str) -> JumpSpec:
    text = spec
    if text.startswith("ssh://"):
        text = text[len("ssh://") :]
    if not text or any(ch.isspace() or ord(ch) < 0x20 or ch == "\x7f" for ch in text):
        raise ValueError(f"jump {spec!r} is not of the form [user@]host[:port]")
    if "," in text:
        raise ValueError(
            f"jump {spec!r} lists several hops; give each hop its own host entry and point "
            "their `jump` at each other"
        )
    user, at, rest = text.rpartition("@")
    if at and not user:
        raise ValueError(f"jump {spec!r} has an empty user name")
    port_text = ""
    if rest.startswith("["):
        address, bracket, tail = rest[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise ValueError(f"jump {spec!r}: bad [address]:port")
        port_text = tail[1:]
        if tail and not port_text:
            raise ValueError(f"jump {spec!r} has an empty port")
    elif rest.count(":") == 1:
        address, _, port_text = rest.partition(":")
        if not port_text:
            raise ValueError(f"jump {spec!r} has an empty port")
    else:
        address = rest  # a host name, or a bare IPv6 address without a port
    if not address:
        raise ValueError(f"jump {spec!r} has no host")
    port: int | None = None
    if port_text:
        if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"jump {spec!r}: port {port_text!r} is not a number in 1-65535")
        port = int(port_text)
    return JumpSpec(address=address, user=user or None, port=port)
