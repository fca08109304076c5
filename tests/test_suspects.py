"""Suspect labels: planted label errors on real digits, the traps, and the class-order rule."""

from __future__ import annotations

import numpy as np
import pytest

from gtpred_core import assemble_run
from gtpred_core.suspects import WAITING_FOR_ORDER, find_label_issues, suspect_labels


@pytest.fixture(scope="module")
def noisy_digits():
    """LogisticRegression trained on a clean half of sklearn's digits scores the other half,
    whose labels have 5% flipped to another class (gtpred's case: a trained model, a folder
    with some wrong labels)."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_tr, X_ev, y_tr, y_ev = train_test_split(X / 16.0, y, test_size=0.5, random_state=0, stratify=y)
    rng = np.random.default_rng(0)
    flipped = rng.choice(len(y_ev), size=45, replace=False)
    noisy = y_ev.copy()
    noisy[flipped] = (y_ev[flipped] + rng.integers(1, 10, size=45)) % 10
    probabilities = LogisticRegression(max_iter=2000).fit(X_tr, y_tr).predict_proba(X_ev)
    return probabilities, noisy, y_ev, set(flipped.tolist())


def test_finds_most_planted_errors_and_suggests_the_true_class(noisy_digits):
    probabilities, noisy, clean, flipped = noisy_digits
    rows, suggested = find_label_issues(noisy, probabilities)
    found = [int(i) in flipped for i in rows]
    assert sum(found) / len(flipped) >= 0.9  # recall
    assert sum(found) / len(rows) >= 0.8  # precision
    assert all(found[:20])  # the most suspect are planted errors
    hits = [k for k, i in enumerate(rows) if int(i) in flipped]
    assert np.mean(suggested[hits] == clean[rows[hits]]) >= 0.9


def test_records_are_most_suspect_first(noisy_digits):
    probabilities, noisy, _, _ = noisy_digits
    names = [f"digit_{k}" for k in range(10)]
    records = suspect_labels([f"img_{i}.png" for i in range(len(noisy))], noisy, probabilities, names)
    scores = [r.score for r in records]
    assert scores == sorted(scores, reverse=True)
    first = records[0]
    i = int(first.path[4:-4])
    assert first.given_label == names[noisy[i]] and first.score == pytest.approx(1 - probabilities[i, noisy[i]])
    assert first.suggested_label != first.given_label


def test_a_class_with_no_images_or_never_predicted_does_not_break_it():
    # classes a, b, c, d: no image is labelled c (two a's look like c); the two d images are
    # never predicted d; image 18 is labelled b but the model is sure it is an a
    a, b, c = [0.9, 0.05, 0.03, 0.02], [0.05, 0.9, 0.03, 0.02], [0.05, 0.05, 0.85, 0.05]
    p = np.array([a] * 8 + [b] * 8 + [c] * 2 + [[0.97, 0.01, 0.01, 0.01]] + [[0.5, 0.1, 0.1, 0.3]] * 2)
    given = np.array([0] * 8 + [1] * 8 + [0, 0] + [1] + [3, 3])
    rows, suggested = find_label_issues(given, p)
    assert rows[0] == 18 and suggested[0] == 0
    assert set(rows.tolist()) <= {16, 17, 18, 19, 20}  # only images the model disagrees with
    assert all(s != given[r] for r, s in zip(rows, suggested))
    assert find_label_issues(np.zeros(0, int), np.zeros((0, 4)))[0].size == 0
    assert find_label_issues(np.zeros(3, int), np.ones((3, 1)))[0].size == 0  # one class: nothing to suggest


def test_a_clean_confident_run_has_no_suspects():
    y = np.arange(20) % 4
    p = np.full((20, 4), 0.02)
    p[np.arange(20), y] = 0.94
    assert find_label_issues(y, p)[0].size == 0


def test_summary_json_lists_suspects_and_waits_for_the_right_order(noisy_digits):
    probabilities, noisy, _, flipped = noisy_digits
    names = tuple(f"digit_{k}" for k in range(10))
    paths = [f"{names[noisy[i]]}/img_{i}.png" for i in range(len(noisy))]
    run = assemble_run(class_names=names, paths=paths, y_true=noisy, y_pred=probabilities.argmax(1), probabilities=probabilities)
    summary = run.summary()
    assert summary["suspect_labels_note"] is None
    assert set(summary["suspect_labels"][0]) == {"path", "given_label", "suggested_label", "score"}
    assert len(summary["suspect_labels"]) >= 40
    # outputs read in a rotated order: the class-order check fires and suspects wait for it
    rotated = run.relabel(names[1:] + names[:1], source="file")
    assert "class-order-mismatch" in rotated.warning_codes()
    assert rotated.summary()["suspect_labels"] == [] and rotated.summary()["suspect_labels_note"] == WAITING_FOR_ORDER


def test_the_suspect_table_and_its_csv_for_relabelling(noisy_digits):
    import csv
    import io

    from gtpred_core.export import SUSPECT_CSV_COLUMNS, suspects_csv
    from gtpred_core.suspects import SUSPECT_COLUMNS, suspect_table

    probabilities, noisy, _, _ = noisy_digits
    names = ("=HYPERLINK(1)",) + tuple(f"digit_{k}" for k in range(1, 10))  # a hostile class name
    paths = [f"+{i}_{names[noisy[i]]}/img.png" for i in range(len(noisy))]
    run = assemble_run(class_names=names, paths=paths, y_true=noisy, y_pred=probabilities.argmax(1), probabilities=probabilities)
    table, note = suspect_table(run)
    assert note is None and list(table.columns) == list(SUSPECT_COLUMNS)
    records = suspect_labels(paths, noisy, probabilities, names)
    assert list(table["file"]) == [s.path for s in records]
    assert list(table["suggested"]) == [s.suggested_label for s in records]
    assert list(table["p_given"]) == pytest.approx([1 - s.score for s in records])
    first = table.iloc[0]
    assert first["p_given"] == pytest.approx(probabilities[first["index"], names.index(first["given"])])
    assert first["p_suggested"] == pytest.approx(probabilities[first["index"]].max())

    rows = list(csv.reader(io.StringIO(suspects_csv(run))))
    assert tuple(rows[0]) == SUSPECT_CSV_COLUMNS and len(rows) == len(table) + 1
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row)
    assert rows[1][0] == "'" + first["file"] and float(rows[1][3]) == pytest.approx(first["p_given"], rel=1e-5)
    assert any(cell == "'=HYPERLINK(1)" for row in rows[1:] for cell in row[1:3])

    rotated = run.relabel(names[1:] + names[:1], source="file")
    table, note = suspect_table(rotated)
    assert table.empty and note == WAITING_FOR_ORDER
    assert suspects_csv(rotated).strip() == ",".join(SUSPECT_CSV_COLUMNS)
