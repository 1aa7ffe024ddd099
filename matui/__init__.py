"""matui: build multi-architecture container images natively over SSH."""

__version__ = "0.1.0"
