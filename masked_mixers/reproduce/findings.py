"""The findings `reproduce` knows, in the paper's order (docs/findings.md), and the order they run in.

F1 and F5 study the language models F4 trains, so F4 runs first: its time is then F4's own, and the
others reuse its models (Context.compare).
"""

from __future__ import annotations

from . import f1_representation, f2_flexibility, f3_autoencoders, f4_clm, f5_retrieval, f6_bidirectional, f7_linear
from .finding import Finding

FINDINGS: dict[str, Finding] = {
    module.FINDING.id: module.FINDING
    for module in (
        f1_representation,
        f2_flexibility,
        f3_autoencoders,
        f4_clm,
        f5_retrieval,
        f6_bidirectional,
        f7_linear,
    )
}
RUN_ORDER = ("F4", "F1", "F5", "F6", "F3", "F2", "F7")

__all__ = ["FINDINGS", "RUN_ORDER"]
