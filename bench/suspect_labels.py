"""How many planted label errors each suspect-label method finds (a figure, not a test).

Digits from scikit-learn, 5% of labels flipped to another class (seeded), probabilities from
LogisticRegression in two settings:

* ``held-out``: the model is trained on a clean half and scores the other, noisy half (gtpred's
  case: a trained model evaluated on a folder whose labels may be wrong);
* ``cross-val``: ``cross_val_predict`` on the noisy labels (cleanlab's usual setting).

Methods: gtpred's self-confidence ranking cut at confident learning's count
(``gtpred_core.suspects``); cleanlab 2.9's ``find_label_issues`` (default ``prune_by_noise_rate``,
``confident_learning``, ``low_self_confidence``, ``low_normalized_margin``) if installed;
and the plain self-confidence baseline (every image whose top class is not its label). Each is
scored by precision and recall of the flagged set against the planted flips, and by
precision@k of its ranking with k = the number planted.

    python bench/suspect_labels.py [--seeds 5] [--noise 0.05]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gtpred_core.suspects import find_label_issues  # noqa: E402


def plant_errors(y: np.ndarray, fraction: float, n_classes: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    noisy = y.copy()
    flipped = rng.choice(len(y), size=int(round(fraction * len(y))), replace=False)
    noisy[flipped] = (y[flipped] + rng.integers(1, n_classes, size=len(flipped))) % n_classes
    return noisy, np.sort(flipped)


def probabilities(setting: str, X: np.ndarray, y_clean: np.ndarray, fraction: float, seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict, train_test_split

    rng = np.random.default_rng(seed)
    model = LogisticRegression(max_iter=2000)
    if setting == "held-out":
        X_tr, X_ev, y_tr, y_ev = train_test_split(X, y_clean, test_size=0.5, random_state=seed, stratify=y_clean)
        noisy, flipped = plant_errors(y_ev, fraction, 10, rng)
        return model.fit(X_tr, y_tr).predict_proba(X_ev), noisy, flipped
    noisy, flipped = plant_errors(y_clean, fraction, 10, rng)
    return cross_val_predict(model, X, noisy, cv=5, method="predict_proba"), noisy, flipped


def score(flagged: np.ndarray, flipped: np.ndarray, k: int) -> tuple[float, float, float]:
    truth = set(flipped.tolist())
    hits = sum(int(i) in truth for i in flagged)
    precision = hits / len(flagged) if len(flagged) else 0.0
    at_k = sum(int(i) in truth for i in flagged[:k]) / k
    return precision, hits / len(truth), at_k


def methods(probs: np.ndarray, noisy: np.ndarray) -> dict[str, np.ndarray]:
    out = {"gtpred (self-confidence, CL count)": find_label_issues(noisy, probs)[0]}
    p_given = probs[np.arange(len(noisy)), noisy]
    wrong = np.flatnonzero(probs.argmax(1) != noisy)
    out["self-confidence (argmax != label)"] = wrong[np.argsort(p_given[wrong], kind="stable")]
    try:
        from cleanlab.filter import find_label_issues as cleanlab_issues
    except ImportError:
        return out
    for filter_by in ("prune_by_noise_rate", "confident_learning", "low_self_confidence", "low_normalized_margin"):
        out[f"cleanlab {filter_by}"] = cleanlab_issues(
            noisy, probs, filter_by=filter_by, return_indices_ranked_by="self_confidence", n_jobs=1
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--noise", type=float, default=0.05)
    args = parser.parse_args()
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    for setting in ("held-out", "cross-val"):
        totals: dict[str, list[tuple[float, float, float, int]]] = {}
        for seed in range(args.seeds):
            probs, noisy, flipped = probabilities(setting, X, y, args.noise, seed)
            for name, flagged in methods(probs, noisy).items():
                totals.setdefault(name, []).append((*score(flagged, flipped, len(flipped)), len(flagged)))
        print(f"\n{setting}: {len(noisy)} images, {len(flipped)} planted errors, {args.seeds} seeds (mean)")
        print(f"{'method':40} {'flagged':>8} {'precision':>10} {'recall':>8} {'prec@k':>8}")
        for name, rows in totals.items():
            p, r, k, n = np.mean(rows, axis=0)
            print(f"{name:40} {n:8.1f} {p:10.3f} {r:8.3f} {k:8.3f}")


if __name__ == "__main__":
    main()
