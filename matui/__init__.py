"""matui: build multi-architecture container images natively over SSH."""

import warnings

# asyncssh before 2.15 imports ARC4 and TripleDES from where cryptography >= 43 warns they have
# moved; the warning lands on stderr of every matui command (one clear line is the rule for
# errors). Only that warning, only from asyncssh, and set before asyncssh is first imported.
warnings.filterwarnings(
    "ignore",
    message=r".* has been moved to cryptography\.hazmat\.decrepit",
    module=r"asyncssh(\.|$)",
)

__version__ = "0.1.0"
