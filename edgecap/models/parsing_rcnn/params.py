"""Parameter counts per part against the paper's Table 4.

    python -m edgecap.models.parsing_rcnn.params

Models are built on the meta device: shapes only, no memory, no initialisation cost. Counts are
of the training form (RPN head shared across levels; `unshare()` multiplies it by 5).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from edgecap.models.parsing_rcnn.config import PRESETS, ParsingRCNNConfig
from edgecap.models.parsing_rcnn.model import ParsingRCNN, build_parsing_rcnn

# Table 4 of "Making DensePose Fast and Light" (Rakhimov et al., WACV 2021).
PAPER_PARAMS = {"densepose_rcnn": 59.73e6, "parsing_rcnn": 54.36e6, "mobile_a": 11.35e6, "mobile_b": 3.35e6}

PARTS = {  # column -> ParsingRCNN attributes
    "backbone": ("backbone",),
    "neck": ("neck",),
    "rpn": ("rpn",),
    "box_head": ("box_head",),
    "dense_head": ("dense_head", "dense_predictor"),
}


@dataclass(frozen=True)
class ParamRow:
    name: str
    backbone: int
    neck: int
    rpn: int
    box_head: int
    dense_head: int  # DensePose body + predictor
    total: int
    paper: float | None  # paper figure, None for configs not in the table

    @property
    def deviation_pct(self) -> float | None:
        return None if self.paper is None else 100.0 * (self.total - self.paper) / self.paper


def count_parameters(model: ParsingRCNN) -> dict[str, int]:
    """Parameters per part (PARTS) and "total"; the parts add up to the total."""
    counts = {k: sum(p.numel() for a in attrs for p in getattr(model, a).parameters()) for k, attrs in PARTS.items()}
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts


def parameter_table(presets: Iterable[str | ParsingRCNNConfig] = tuple(PRESETS)) -> list[ParamRow]:
    """One row per preset name or config."""
    rows = []
    for item in presets:
        cfg = PRESETS[item] if isinstance(item, str) else item
        with torch.device("meta"):
            counts = count_parameters(build_parsing_rcnn(cfg))
        rows.append(ParamRow(cfg.name, **counts, paper=PAPER_PARAMS.get(cfg.name)))
    return rows


def format_table(rows: Iterable[ParamRow]) -> str:
    """Markdown table, millions of parameters."""
    cols = ["config", "backbone", "neck", "RPN", "box head", "DensePose head", "total", "paper", "deviation"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        m = [f"{v / 1e6:.2f}M" for v in (r.backbone, r.neck, r.rpn, r.box_head, r.dense_head, r.total)]
        paper = "-" if r.paper is None else f"{r.paper / 1e6:.2f}M"
        dev = "-" if r.deviation_pct is None else f"{r.deviation_pct:+.1f}%"
        lines.append("| " + " | ".join([r.name, *m, paper, dev]) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_table(parameter_table()))
