"""Actors: step envs with the newest weights they have, turn experience into work (gradients
or rollouts) and send it to the learner. They need only the learner's address."""
