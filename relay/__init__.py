"""The relay: between the actors of one host (or rack) and the learner."""
