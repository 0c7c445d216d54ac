"""Errors of the tools that the CLI turns into one line, importable without torch (see
learner/errors.py)."""


class EvaluateError(RuntimeError):
    pass
