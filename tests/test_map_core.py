"""The embedding map's points and regions, the leakage table, and Compare's calibration and
suspect-label fields, on small real runs (tests/map_fixtures.py)."""

from __future__ import annotations

import numpy as np
import pytest

from gtpred_core import compare_runs
from gtpred_core.calibration import calibration
from gtpred_core.embeddings import (
    METHOD_PENULTIMATE,
    METHOD_PROBABILITIES,
    embedding_points,
    maps_probabilities,
    region_files,
)
from gtpred_core.leakage import LeakedPair, leakage_table

from map_fixtures import WRONG_A, WRONG_B, make_run, write_images, write_train_folder


@pytest.fixture()
def images(tmp_path):
    root = tmp_path / "images"
    return root, write_images(root)


def test_points_place_every_file_with_its_classes(images):
    root, paths = images
    run = make_run(root, paths, wrong=WRONG_A)
    points = embedding_points(run)
    assert len(points) == 30 and list(points["file"]) == paths
    row = points[points["file"] == "fox/img_2.png"].iloc[0]
    assert (row["x"], row["y"]) == pytest.approx((20.2, 2.0))
    assert (row["true"], row["predicted"], bool(row["right"])) == ("fox", "cat", False)
    assert int(points["right"].sum()) == 28


def test_a_run_without_a_map_has_no_points_and_no_region(images):
    root, paths = images
    run = make_run(root, paths, embedding=False)
    assert embedding_points(run) is None
    assert region_files(run, (0, 100), (0, 100)).empty


def test_region_lists_the_files_inside_edges_included_bounds_in_any_order(images):
    root, paths = images
    run = make_run(root, paths, wrong=WRONG_A)
    files = region_files(run, (1.0, -1.0), (4.0, 0.0))  # cats 0..4 (x 0..0.4, y 0..4)
    assert sorted(files["file"]) == [f"cat/img_{i}.png" for i in range(5)]
    assert files.iloc[0]["file"] == "cat/img_1.png"  # most confident first: the wrong one, 95% dog
    assert files.iloc[0]["predicted"] == "dog"
    assert region_files(run, (30, 40), (0, 9)).empty


def test_the_method_says_when_probabilities_were_mapped():
    assert maps_probabilities(METHOD_PROBABILITIES)
    assert not maps_probabilities(METHOD_PENULTIMATE)
    assert not maps_probabilities(None)


def test_leakage_table_lists_exact_copies_first_with_paths_relative_to_each_folder(images, tmp_path):
    root, paths = images
    train = tmp_path / "train"
    write_train_folder(root, train)
    run = make_run(root, paths, train=train)
    table = leakage_table(run.leakage)
    assert list(table["file"]) == ["cat/img_0.png", "dog/img_3.png"]
    assert list(table["train_file"]) == ["cat/copy.png", "dog/resaved.png"]
    assert list(table["kind"]) == ["exact", "near"]
    assert table["similarity"].iloc[0] == 1.0 and table["similarity"].iloc[1] >= 1 - 6 / 64
    assert leakage_table(None).empty


def test_leakage_table_orders_by_kind_then_similarity():
    pairs = [LeakedPair("b.png", "x.png", "near", 0.95), LeakedPair("a.png", "y.png", "near", 0.99), LeakedPair("c.png", "z.png", "exact", 1.0)]
    assert list(leakage_table(pairs)["file"]) == ["c.png", "a.png", "b.png"]


def test_compare_gives_the_calibration_error_delta_b_minus_a(images):
    root, paths = images
    a = make_run(root, paths, sure=0.9, wrong=WRONG_A)
    b = make_run(root, paths, sure=0.6, wrong=WRONG_B)
    comparison = compare_runs(a, b)
    ece_a, ece_b = calibration(a.probabilities, a.y_true).ece, calibration(b.probabilities, b.y_true).ece
    assert comparison.ece_a == pytest.approx(ece_a) and comparison.ece_b == pytest.approx(ece_b)
    assert comparison.ece_delta == pytest.approx(ece_b - ece_a)
    # by hand: A is 28 right at 0.9 and 2 wrong at 0.95 -> |28/28 - 0.9| * 28/30 + |0 - 0.95| * 2/30
    assert ece_a == pytest.approx(0.1 * 28 / 30 + 0.95 * 2 / 30, abs=1e-6)


def test_compare_lists_the_files_suspect_in_both_runs(images):
    root, paths = images
    a = make_run(root, paths, wrong=WRONG_A)
    b = make_run(root, paths, wrong=WRONG_B)
    comparison = compare_runs(a, b)
    assert comparison.suspects_in_common == ("cat/img_1.png",)
    assert (comparison.n_suspects_a, comparison.n_suspects_b) == (2, 2)
    assert set(compare_runs(a, a).suspects_in_common) == set(WRONG_A)


def test_suspects_in_common_wait_for_the_right_class_order(images):
    root, paths = images
    a = make_run(root, paths, wrong=WRONG_A)
    misread = a.relabel(("dog", "fox", "cat"))  # every prediction read under the wrong names
    assert "class-order-mismatch" in misread.warning_codes()
    assert compare_runs(a, misread).suspects_in_common is None
