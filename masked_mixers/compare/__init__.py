"""`masked-mixers compare`: several models trained on the same tokens for the same budget.

runner.py trains and evaluates, matching.py sizes models to equal measured memory,
samples.py generates text, plots.py draws the loss curves, report.py writes report.md and
results.json.
"""

from .matching import SizeMatch, match_memory, measure_training_memory
from .runner import CompareResult, run_compare

__all__ = ["CompareResult", "SizeMatch", "match_memory", "measure_training_memory", "run_compare"]
