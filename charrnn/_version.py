"""The single source of charrnn's version."""

__version__ = "0.1.0"
