"""SSH connections to builder hosts: one cached connection per host, host keys always checked.

Rules this module keeps (see the field notes for how each was verified):

* ``known_hosts`` is always handed to asyncssh explicitly, as an already-parsed object. ``None``
  would turn checking off, and an *empty* path or ``b""`` would make asyncssh fall back to
  ``~/.ssh/known_hosts``; a missing file therefore becomes an empty, but still checking, list.
* asyncssh never reads an ssh config file (``config=None``): ``UserKnownHostsFile none`` or a
  ``ProxyCommand`` there must not change how matui connects. The user's ``~/.ssh/config`` is read
  here only to resolve host aliases (HostName, Port, User, IdentityFile) and their ProxyJump.
* Jump hosts (a host entry's ``jump``, or a ProxyJump, one hop or several) are connected by this
  pool with the full options and passed as ``tunnel=`` objects; one bastion connection carries
  every host behind it.
* sshd limits sessions per connection (MaxSessions): a channel refused "for now" is retried on
  spare connections to the same host and with backoff, never reported as the host unreachable.
* Output is read as bytes: one invalid UTF-8 byte in text mode tears down the whole connection.
* A lost connection gives ``exit_status=None``, which is never success.
"""

from matui.engine.ssh.known_hosts import (
    SSH_PORT,
    append_known_host,
    fingerprint,
    known_hosts_line,
    known_hosts_pattern,
    trust_command,
)
from matui.engine.ssh.model import (
    DEFAULT_KNOWN_HOSTS,
    DEFAULT_SSH_CONFIG,
    ENCRYPTION_ALGS,
    AuthFailed,
    CommandResult,
    CommandTimedOut,
    HostEntry,
    HostKeyChanged,
    HostKeyUnknown,
    HostList,
    HostUnreachable,
    SessionLost,
    SessionsRefused,
    SshError,
)
from matui.engine.ssh.pool import (
    SshPool,
)
from matui.engine.ssh.target import (
    JumpSpec,
    parse_jump_spec,
)

__all__ = [
    "DEFAULT_KNOWN_HOSTS",
    "DEFAULT_SSH_CONFIG",
    "ENCRYPTION_ALGS",
    "SSH_PORT",
    "AuthFailed",
    "CommandResult",
    "CommandTimedOut",
    "HostEntry",
    "HostKeyChanged",
    "HostKeyUnknown",
    "HostList",
    "HostUnreachable",
    "JumpSpec",
    "SessionLost",
    "SessionsRefused",
    "SshError",
    "SshPool",
    "append_known_host",
    "fingerprint",
    "known_hosts_line",
    "known_hosts_pattern",
    "parse_jump_spec",
    "trust_command",
]
