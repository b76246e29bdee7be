"""Benchmarks behind `masked-mixers bench ...`: one module per subcommand, plus analytic FLOPs."""
