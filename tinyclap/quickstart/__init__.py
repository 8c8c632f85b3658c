"""The built-in default: the whole pipeline end to end on the procedural corpus."""

from tinyclap.quickstart.pipeline import QuickstartOptions, run_quickstart

__all__ = ["QuickstartOptions", "run_quickstart"]
