"""unistack: run a whole application stack from one Compose file."""

__version__ = "0.1.0"
