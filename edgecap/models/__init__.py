"""Model families by name: a plain dict of "module:class", imported on first use (so
`edgecap --help` stays fast and no family registers itself as an import side effect).
A new family is a folder here (see edgecap.models.contract) and one line in this table."""

from __future__ import annotations

import importlib

from edgecap import EdgecapError

FAMILIES = {
    "lifting": "edgecap.models.lifting.family:LiftingFamily",
    "parsing_rcnn": "edgecap.models.parsing_rcnn.family:ParsingRCNNFamily",
    "reenactment": "edgecap.models.reenactment.family:ReenactmentFamily",
    "triangulation": "edgecap.models.triangulation.family:TriangulationFamily",
}


def get_family(name: str):
    """The family object of a name (an edgecap.models.contract.ModelFamily)."""
    if name not in FAMILIES:
        raise EdgecapError(f"unknown model {name!r}; available: {sorted(FAMILIES)}")
    module, cls = FAMILIES[name].split(":")
    return getattr(importlib.import_module(module), cls)()
