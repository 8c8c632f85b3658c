"""`python -m tinyclap` (also what `torchrun -m tinyclap` runs)."""

import sys

from tinyclap.cli import main

sys.exit(main())
