"""The learner: receives gradients or rollouts from actors, updates the one model, serves
weights back, and records the run (config, metrics, checkpoints, summary)."""
