"""ISO/IEC 30107-3 metrics on hand-computed cases and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signgate.evaluation.metrics import apcer, bpcer, bpcer_at_apcer, pad_report

scores = st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=30)


def test_apcer_and_bpcer_on_a_hand_computed_case() -> None:
    bona_fide = [0.1, 0.2, 0.6, 0.3]
    attacks = {"print": [0.9, 0.4, 0.7], "screen": [0.55, 0.95]}
    report = pad_report(bona_fide, attacks, threshold=0.5)
    by_species = {s.species: s.apcer for s in report.species}
    assert by_species == {"print": pytest.approx(1 / 3), "screen": 0.0}
    assert report.bpcer == pytest.approx(1 / 4)
    assert report.acer == pytest.approx((1 / 3 + 1 / 4) / 2)


def test_bpcer_at_apcer_picks_the_threshold_that_keeps_every_species_under_the_cap() -> None:
    bona_fide = [0.1, 0.2, 0.45, 0.5]
    attacks = {"print": [0.4, 0.8, 0.9], "screen": [0.6, 0.7]}
    # APCER 0 requires t <= 0.4, which flags bona fide 0.45 and 0.5: BPCER 0.5.
    assert bpcer_at_apcer(bona_fide, attacks, 0.0) == (0.5, 0.4)


def test_empty_sets_are_refused() -> None:
    with pytest.raises(ValueError):
        apcer([], 0.5)
    with pytest.raises(ValueError):
        bpcer([], 0.5)


@given(scores, scores, st.floats(0, 1))
def test_raising_the_threshold_never_lowers_apcer_nor_raises_bpcer(
    bona_fide: list[float], attacks: list[float], t: float
) -> None:
    higher = min(1.0, t + 0.1)
    assert apcer(attacks, higher) >= apcer(attacks, t)
    assert bpcer(bona_fide, higher) <= bpcer(bona_fide, t)


@given(scores, scores)
def test_a_looser_apcer_cap_never_costs_more_bpcer(
    bona_fide: list[float], attacks: list[float]
) -> None:
    strict, _ = bpcer_at_apcer(bona_fide, {"a": attacks}, 0.01)
    loose, _ = bpcer_at_apcer(bona_fide, {"a": attacks}, 0.05)
    assert loose <= strict
