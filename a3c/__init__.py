"""The `a3c` command: learner, actor, train (both on this machine) and evaluate."""
