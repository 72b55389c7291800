"""Errors a user can cause: shown as one sentence, exit code non-zero, never a traceback."""


class UserError(Exception):
    """A mistake the user can fix (bad config, unknown task, missing file, nothing reachable)."""

    exit_code = 2
