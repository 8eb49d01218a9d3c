"""Datasets of users: a registry of loaders and the populations shipped with the package.

Registered: ``two-slopes``, ``gaussian-groups`` (synthetic), ``acs-income``, ``acs-work``
(real census people, embedded), ``diabetes``, ``breast-cancer``, ``digits`` (scikit-learn),
``synthetic-ratings`` (embedded stand-in for MovieLens); from files you supply: ``movielens``,
``acs-employment`` and the other folktables tasks (:mod:`.folktables_acs`).
"""

from . import (  # noqa: F401  (each registers its loaders)
    acs,
    folktables_acs,
    movielens,
    ratings_synthetic,
    sklearn_sets,
    synthetic,
)
from .registry import Dataset, dataset_names, load_dataset, register_dataset

__all__ = ["Dataset", "dataset_names", "load_dataset", "register_dataset"]
