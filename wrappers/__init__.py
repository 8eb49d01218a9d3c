"""Wrappers over the market environments (Gymnasium single-agent views and adapters).

Version 0.1.0 ships none yet; the package exists so that ``choicemarket.wrappers`` is a stable
import path.
"""

__all__: list[str] = []
