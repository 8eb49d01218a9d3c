"""Experiment configs (YAML), one per figure of the main paper; see ``choicemarket run``."""
