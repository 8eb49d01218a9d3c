"""Small real data sets bundled with scikit-learn (no download): diabetes, breast cancer, digits.

- ``diabetes`` (:func:`load_diabetes`): regression, 442 patients, 10 baseline features (age, sex,
  BMI, blood pressure, six blood serum measurements); the label, a measure of disease progression
  one year later, is standardised to mean 0, std 1 (its original mean and std are kept in
  ``extra["y_mean"]`` and ``extra["y_std"]``).
- ``breast-cancer`` (:func:`load_breast_cancer`): binary, 569 tumours (Wisconsin diagnostic),
  30 features computed from images of cell nuclei; ``y = 1`` benign, ``y = 0`` malignant.
- ``digits`` (:func:`load_digits`): multiclass, 1797 handwritten digits as 8x8 grey levels
  (64 features), 10 classes.

Each loader standardises every feature column to mean 0, std 1 (a constant column, such as the
always-blank border pixels of ``digits``, becomes 0) and, with ``intercept=True`` (the default),
appends a constant 1.0 column named ``intercept``.
"""

from __future__ import annotations

import numpy as np

from .preprocess import check_bool, design_matrix
from .registry import Dataset, register_dataset

SOURCE = "scikit-learn bundled datasets (sklearn.datasets)"


def load_diabetes(intercept: bool = True) -> Dataset:
    """Diabetes progression (regression); X and y standardised."""
    from sklearn import datasets

    intercept = check_bool("intercept", intercept)
    raw = datasets.load_diabetes(scaled=False)
    X, names = design_matrix(raw.data, tuple(raw.feature_names), intercept)
    target = np.asarray(raw.target, dtype=np.float64)
    y_mean, y_std = float(target.mean()), float(target.std())
    return Dataset(
        name="diabetes",
        X=X,
        y=(target - y_mean) / y_std,
        task="regression",
        feature_names=names,
        description=(
            "Diabetes progression one year after baseline (Efron et al. 2004), 442 patients, "
            "10 standardised features; label standardised to mean 0, std 1."
        ),
        extra={"source": SOURCE, "y_mean": y_mean, "y_std": y_std},
    )


def load_breast_cancer(intercept: bool = True) -> Dataset:
    """Wisconsin diagnostic breast cancer (binary: 1 benign, 0 malignant)."""
    from sklearn import datasets

    intercept = check_bool("intercept", intercept)
    raw = datasets.load_breast_cancer()
    X, names = design_matrix(raw.data, tuple(raw.feature_names), intercept)
    return Dataset(
        name="breast-cancer",
        X=X,
        y=np.asarray(raw.target, dtype=np.int64),
        task="binary",
        feature_names=names,
        description=(
            "Breast cancer Wisconsin (diagnostic), 569 tumours, 30 standardised features of cell "
            "nuclei; y = 1 benign, 0 malignant."
        ),
        extra={"source": SOURCE},
    )


def load_digits(intercept: bool = True) -> Dataset:
    """Handwritten digits, 8x8 pixels (multiclass, 10 classes)."""
    from sklearn import datasets

    intercept = check_bool("intercept", intercept)
    raw = datasets.load_digits()
    X, names = design_matrix(raw.data, tuple(raw.feature_names), intercept)
    return Dataset(
        name="digits",
        X=X,
        y=np.asarray(raw.target, dtype=np.int64),
        task="multiclass",
        n_classes=10,
        feature_names=names,
        description=(
            "UCI optical handwritten digits, 1797 images of 8x8 grey levels (64 standardised "
            "pixel features), 10 classes."
        ),
        extra={"source": SOURCE},
    )


register_dataset("diabetes", load_diabetes)
register_dataset("breast-cancer", load_breast_cancer)
register_dataset("digits", load_digits)
