"""The participation-dynamics market (Dean et al.): config, population and the batched core."""
