"""Benchmarks behind `masked-mixers bench NAME`: one module per benchmark (with the command
interface `add_arguments(parser)`, `run(args) -> int`, docstring as --help), plus analytic FLOPs."""
