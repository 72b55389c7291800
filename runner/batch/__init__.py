"""`runner batch`: a prompt file run concurrently across backends into a resumable results file."""

from .run import EXIT_BUDGET, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, Batch, BatchOptions, new_batch_id

__all__ = ["Batch", "BatchOptions", "EXIT_BUDGET", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "new_batch_id"]
