"""The experiment layer: simulate markets, sweep configs, benchmark baselines, draw and report.

Modules: ``runner`` (``simulate``, ``run_markets``: the one episode loop, and ``History``),
``experiment`` (config files), ``sweep`` (run a config's grid), ``bench`` (the baseline
leaderboard), ``demo``, ``figures``, ``report`` and ``cli`` (the ``choicemarket`` command).
"""
