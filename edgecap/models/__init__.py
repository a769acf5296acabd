"""Model families by name: a plain dict, no import-time registration side effects."""

from __future__ import annotations

from edgecap import EdgecapError


def get_family(name: str):
    # Imported lazily so `edgecap --help` stays fast and families stay independent.
    if name == "lifting":
        from edgecap.models.lifting import LiftingFamily

        return LiftingFamily()
    raise EdgecapError(f"unknown model {name!r}; available: {FAMILIES}")


FAMILIES = ["lifting"]
