"""Classification metrics computed with NumPy (checked against scikit-learn in the tests)."""
from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts (n_classes, n_classes): row = true class, column = predicted class."""
    return np.bincount(np.asarray(y_true) * n_classes + np.asarray(y_pred),
                       minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def classification_report(y_true, y_pred, class_names) -> dict:
    """Accuracy, macro F1, per-class precision, recall, F1 and support, and the confusion matrix.

    A precision or recall whose denominator is zero is reported as 0.
    """
    n = len(class_names)
    cm = confusion_matrix(y_true, y_pred, n)
    tp = np.diag(cm).astype(np.float64)
    predicted, support = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros(n), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(n), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(n), where=denom > 0)
    return {
        "accuracy": float(tp.sum() / cm.sum()),
        "macro_f1": float(f1.mean()),
        "per_class": {c: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                          "support": int(support[i])} for i, c in enumerate(class_names)},
        "confusion_matrix": cm.tolist(),
    }


def roc_curve(positive: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct score threshold, from (0, 0) to (1, 1).

    Parameters
    ----------
    positive : ndarray of bool, shape (n,)
    score : ndarray, shape (n,)
        Higher means more likely positive.
    """
    order = np.argsort(-score, kind="mergesort")
    s, pos = score[order], positive[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # end of each run of equal scores
    tp = np.cumsum(pos)[last]
    fp = (last + 1) - tp
    return np.r_[0.0, fp / max(fp[-1], 1)], np.r_[0.0, tp / max(tp[-1], 1)]


def one_vs_rest_auc(y_true: np.ndarray, probabilities: np.ndarray) -> list[float]:
    """Area under the one-vs-rest ROC curve of each class (trapezoidal rule)."""
    aucs = []
    for c in range(probabilities.shape[1]):
        fpr, tpr = roc_curve(y_true == c, probabilities[:, c])
        aucs.append(float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)))
    return aucs
