"""The reinforcement-learning core shared by learner and actors: hyperparameters, env
construction, networks, returns and losses. It knows nothing of sockets."""
