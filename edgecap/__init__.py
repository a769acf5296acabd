"""edgecap: human-capture vision models from PyTorch to phones."""

__version__ = "0.1.0"


class EdgecapError(Exception):
    """An error a user can act on: the message names the file, field, shape or op."""

    exit_code = 2  # what the CLI exits with (a failed validation gate: 1)


def _quiet_known_harmless_warnings() -> None:
    """torchao warns that its CUDA-only kernels do not load on a CPU build, and torch's pytree
    warns about an Enum registration inside torchao; neither affects edgecap's CPU paths."""
    import logging

    logging.getLogger("torchao").setLevel(logging.ERROR)
    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)


_quiet_known_harmless_warnings()
