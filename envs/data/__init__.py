"""Datasets of users: a registry of loaders and the populations shipped with the package.

Registered: ``two-slopes``, ``gaussian-groups`` (synthetic), ``acs-income``, ``acs-work``
(real census people, embedded), ``diabetes``, ``breast-cancer``, ``digits`` (scikit-learn),
``synthetic-ratings`` (embedded stand-in for MovieLens), ``uci-sentiment`` (review sentences
with precomputed embeddings, embedded); from files you supply: ``movielens``, ``acs-employment``
and the other folktables tasks (:mod:`.folktables_acs`), ``amazon-reviews`` (Amazon Reviews 2023,
embedded on the fly).
"""

from . import (  # noqa: F401  (each registers its loaders)
    acs,
    folktables_acs,
    movielens,
    ratings_synthetic,
    sklearn_sets,
    synthetic,
)
from .amazon_reviews import load_amazon_reviews  # noqa: F401  (registers amazon-reviews)
from .registry import Dataset, dataset_names, load_dataset, register_dataset
from .uci_sentiment import load_uci_sentiment  # noqa: F401  (registers uci-sentiment)

__all__ = ["Dataset", "dataset_names", "load_dataset", "register_dataset"]
