"""The batched market simulation: config, population, state, losses and the step."""
