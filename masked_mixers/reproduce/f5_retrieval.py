"""F5: retrieval (placeholder until the retrieval protocol lands)."""

from __future__ import annotations

from .context import Context
from .finding import Finding, Measured


def run(ctx: Context) -> Measured:
    raise NotImplementedError("F5 is being written")


FINDING = Finding(id="F5", title="Retrieval", claim="-", published="-", protocol="-", run=run)
