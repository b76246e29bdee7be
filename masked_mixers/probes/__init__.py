"""Probes of what a model keeps and how it trains: representation accuracy and ablations.

representation.py is the inversion probe and its metric, represent_runner.py runs it over models
and inputs (`masked-mixers represent`); ablation.py builds the ablated variants and detects
divergence, ablate_runner.py trains them (`masked-mixers ablate`); report.py writes both
reports, plotting.py draws their figures. The commands only parse arguments and call a runner.
"""
