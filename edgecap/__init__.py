"""edgecap: human-capture vision models from PyTorch to phones."""

__version__ = "0.1.0"


class EdgecapError(Exception):
    """An error a user can act on: the message names the file, field, shape or op."""
