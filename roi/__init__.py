"""roi: should one LLM call serve several tasks at once? Evidence, ROI and a staged-rollout decision.

Library use (no CLI needed)::

    from roi import load_pilot, run_pilot, RunOptions
    result = run_pilot(load_pilot("pilots/superposition-demo.yaml"), RunOptions(limit=5))
"""

from roi.errors import RoiError, RunFailed
from roi.pilot import LoadedPilot, load_pilot
from roi.runner import RunOptions, RunResult, run_pilot

__all__ = ["LoadedPilot", "RoiError", "RunFailed", "RunOptions", "RunResult", "load_pilot", "run_pilot"]
__version__ = "0.1.0"
