"""Datasets of users: a registry of loaders and the populations shipped with the package.

Registered: ``two-slopes``, ``gaussian-groups`` (synthetic), ``acs-income``, ``acs-work``
(real census people, embedded), ``diabetes``, ``breast-cancer``, ``digits`` (scikit-learn).
"""

from . import acs, sklearn_sets, synthetic  # noqa: F401  (each registers its loaders)
from .registry import Dataset, dataset_names, load_dataset, register_dataset

__all__ = ["Dataset", "dataset_names", "load_dataset", "register_dataset"]
