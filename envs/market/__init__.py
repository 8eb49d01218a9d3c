"""The market's parts: config, population, choice, probing, learners entering and leaving,
the collective, rewards and metrics, losses, and the one transition (``core``)."""
