"""matui's configuration file: builder hosts and the images to build on them.

The file is TOML with three top-level keys (see ``config.example.toml`` for every key)::

    [defaults]            # optional: applied to every [[hosts]] entry that leaves them out
    user = "builder"
    identity = "~/.ssh/id_ed25519"
    known_hosts = "~/.ssh/known_hosts"

    [[hosts]]             # one per builder host
    name = "amd64-1"
    arch = "amd64"
    address = "build1.example.com"

    [[images]]            # one per image to build
    name = "registry.example.com/team/app"
    tags = ["1.0"]
    context = "."
    platforms = ["linux/amd64", "linux/arm64"]

Checking never stops at the first mistake: every mistake becomes one :class:`Problem` naming the
key path (``hosts[1].arch``) and the fix, and they are raised together as one
:class:`ConfigError`. A config with no hosts and no images is valid, so ``matui init`` followed by
``matui host add`` works; commands that need a host or an image say so when they run.

Relative paths (``identity``, ``known_hosts``, ``context``) are resolved against the directory
of the config file, after ``~`` expansion.
"""

from matui.engine.config.files import (
    STARTER,
    add_host,
    default_config_path,
    find_config,
    load_config,
    parse_config,
    write_starter_config,
)
from matui.engine.config.model import (
    CONFIG_ENV,
    DEFAULT_ARCH_TAG,
    DEFAULT_MIN_FREE_DISK,
    LOCAL_NAME,
    Config,
    ConfigError,
    ConfigRewrittenWarning,
    FailureSignature,
    HostConfig,
    ImageConfig,
    Problem,
    SecretSource,
    SshTarget,
    format_size,
    format_ssh_target,
    looks_like_secret,
    parse_size,
    parse_ssh_target,
    reserved_build_arg,
)

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_ARCH_TAG",
    "DEFAULT_MIN_FREE_DISK",
    "LOCAL_NAME",
    "STARTER",
    "Config",
    "ConfigError",
    "ConfigRewrittenWarning",
    "FailureSignature",
    "HostConfig",
    "ImageConfig",
    "Problem",
    "SecretSource",
    "SshTarget",
    "add_host",
    "default_config_path",
    "find_config",
    "format_size",
    "format_ssh_target",
    "load_config",
    "looks_like_secret",
    "parse_config",
    "parse_size",
    "parse_ssh_target",
    "reserved_build_arg",
    "write_starter_config",
]
