"""`masked-mixers reproduce`: every finding of the paper, run with its protocol, into one scorecard.

findings.py lists them (one module per finding, f1_representation.py ... f7_linear.py), scales.py
sizes them, context.py trains through `compare`, verdict.py judges each measured gap against the
paper's direction, scorecard.py writes scorecard.md/json/png, runner.py runs the lot.
"""

from .findings import FINDINGS
from .runner import ReproduceRequest, run_reproduce
from .scales import SCALES

__all__ = ["FINDINGS", "SCALES", "ReproduceRequest", "run_reproduce"]
