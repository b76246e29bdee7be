"""`python -m masked_mixers ...`: the same command line as `masked-mixers ...`."""

import sys

from masked_mixers_entry import main

if __name__ == "__main__":
    sys.exit(main())
