"""Read-only registry client: manifests, indexes, image configs, digests.

Standard library only. Everything that touches the network is synchronous underneath and exposed
through ``async`` methods that run it in a worker thread (``asyncio.to_thread``).

Security rules kept here:

* credentials are read lazily (only after a registry asks for them) and never logged, never put in
  an exception message, never passed on a command line (credential helpers get the host on stdin);
* an ``Authorization`` header is never forwarded to another origin on a redirect (registries
  redirect blob downloads to object storage);
* credentials are only sent over HTTPS, or plain HTTP to hosts allowed by ``insecure_hosts``
  (loopback by default);
* every manifest's digest is computed from the exact bytes served and checked against the
  ``Docker-Content-Digest`` header and against the digest asked for.

The parsing functions (:func:`parse_manifest`, :func:`parse_image_config`,
:func:`parse_www_authenticate`, :func:`credentials_from_config`) are pure and tested on their own.
"""

from matui.engine.registry.client import (
    RegistryClient,
    is_loopback_host,
)
from matui.engine.registry.credentials import (
    credential_helper_for,
    credentials_from_config,
    default_docker_config,
    load_docker_config,
    run_credential_helper,
)
from matui.engine.registry.model import (
    ACCEPT,
    ANNOTATION_REFERENCE_DIGEST,
    ANNOTATION_REFERENCE_TYPE,
    ATTESTATION_MANIFEST,
    INDEX_TYPES,
    MANIFEST_TYPES,
    MAX_CONFIG_BYTES,
    MAX_MANIFEST_BYTES,
    MEDIA_DOCKER_LIST,
    MEDIA_DOCKER_MANIFEST,
    MEDIA_DOCKER_SCHEMA1,
    MEDIA_DOCKER_SCHEMA1_SIGNED,
    MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST,
    Challenge,
    Credentials,
    ImageConfigFacts,
    IndexEntry,
    Manifest,
    NotFound,
    RegistryError,
)
from matui.engine.registry.parse import (
    parse_image_config,
    parse_manifest,
    parse_www_authenticate,
    sha256_digest,
)

__all__ = [
    "ACCEPT",
    "ANNOTATION_REFERENCE_DIGEST",
    "ANNOTATION_REFERENCE_TYPE",
    "ATTESTATION_MANIFEST",
    "INDEX_TYPES",
    "MANIFEST_TYPES",
    "MAX_CONFIG_BYTES",
    "MAX_MANIFEST_BYTES",
    "MEDIA_DOCKER_LIST",
    "MEDIA_DOCKER_MANIFEST",
    "MEDIA_DOCKER_SCHEMA1",
    "MEDIA_DOCKER_SCHEMA1_SIGNED",
    "MEDIA_OCI_INDEX",
    "MEDIA_OCI_MANIFEST",
    "Challenge",
    "Credentials",
    "ImageConfigFacts",
    "IndexEntry",
    "Manifest",
    "NotFound",
    "RegistryClient",
    "RegistryError",
    "credential_helper_for",
    "credentials_from_config",
    "default_docker_config",
    "is_loopback_host",
    "load_docker_config",
    "parse_image_config",
    "parse_manifest",
    "parse_www_authenticate",
    "run_credential_helper",
    "sha256_digest",
]
