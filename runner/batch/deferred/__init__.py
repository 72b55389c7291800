"""`runner batch --deferred`: hosted rows through the providers' batch APIs (about half price),
local rows live, into the same resumable results file and run log. See run.py for the flow and
state.py for the jobs file that makes a killed run resumable without submitting anything twice."""

from .run import EXIT_PENDING, Deferred, DeferredOptions

__all__ = ["Deferred", "DeferredOptions", "EXIT_PENDING"]
