"""The pool offers AES-GCM first (several times faster in asyncssh than chacha20-poly1305)."""

from __future__ import annotations

import asyncssh

from matui.engine.ssh import ENCRYPTION_ALGS


def test_gcm_first_then_every_default() -> None:
    assert ENCRYPTION_ALGS[0] == "aes128-gcm@openssh.com"
    defaults = {a.decode() for a in asyncssh.encryption.get_default_encryption_algs()}
    assert set(ENCRYPTION_ALGS) == defaults
    assert len(ENCRYPTION_ALGS) == len(defaults)
