"""Errors the CLI turns into one line, importable without torch: `a3c status`, the
Kubernetes probe, loads this module and must stay light."""


class LearnerStartError(RuntimeError):
    """The learner cannot start; the message names why, in one line."""
