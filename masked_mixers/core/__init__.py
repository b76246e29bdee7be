"""The foundation every other package stands on: errors, atomic files, YAML configs, progress bars,
devices, clocks and the command-line building blocks. Nothing here imports the rest of the package.

errors.py      UserError: one line and exit 2 for anything the user can fix
files.py       atomic writes (temporary file, then rename), output-path checks
configfile.py  dataclass configs <-> YAML (strict keys, `--set` overrides)
progress.py    one switch for every progress bar
devices.py     `--device auto|cpu|cuda|cuda:N|mps` resolved
clocks.py      wall, process-CPU and GPU time
options.py     argparse pieces every command shares (standard library only, for a fast --help)
"""
