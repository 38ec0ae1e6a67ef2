"""ISO/IEC 30107-3 presentation-attack-detection metrics over risk scores.

Scores are risk (1 = attack). At threshold `t` a presentation is classified as an attack
when `score >= t`:
- APCER(species, t): share of that species' attack presentations classified bona fide;
- BPCER(t): share of bona fide presentations classified as attacks;
- ACER(t) = (max over species of APCER + BPCER) / 2 (kept because the issue asks; the
  2023 revision of the standard discourages it);
- BPCER@APCER=x: the lowest BPCER over thresholds whose worst-species APCER <= x.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel


def apcer(attack_scores: Sequence[float], threshold: float) -> float:
    if not attack_scores:
        raise ValueError("APCER needs at least one attack presentation")
    return sum(s < threshold for s in attack_scores) / len(attack_scores)


def bpcer(bona_fide_scores: Sequence[float], threshold: float) -> float:
    if not bona_fide_scores:
        raise ValueError("BPCER needs at least one bona fide presentation")
    return sum(s >= threshold for s in bona_fide_scores) / len(bona_fide_scores)


def candidate_thresholds(*score_sets: Sequence[float]) -> list[float]:
    """Every distinct score, plus one above the maximum (classify nothing as attack)."""
    scores = sorted({s for scores in score_sets for s in scores})
    return [*scores, (scores[-1] + 1.0) if scores else 1.0]


def bpcer_at_apcer(
    bona_fide: Sequence[float], attacks: Mapping[str, Sequence[float]], max_apcer: float
) -> tuple[float, float]:
    """(BPCER, threshold) at the best threshold keeping every species' APCER <= max_apcer."""
    best: tuple[float, float] | None = None
    for t in candidate_thresholds(bona_fide, *attacks.values()):
        if max(apcer(scores, t) for scores in attacks.values()) <= max_apcer:
            candidate = (bpcer(bona_fide, t), t)
            if best is None or candidate[0] < best[0]:
                best = candidate
    assert best is not None  # the lowest threshold classifies every attack: APCER 0
    return best


class SpeciesReport(BaseModel):
    species: str
    presentations: int
    apcer: float


class PadReport(BaseModel):
    threshold: float
    bona_fide_presentations: int
    bpcer: float
    acer: float
    species: list[SpeciesReport]
    bpcer_at_apcer_5: float
    bpcer_at_apcer_1: float


def pad_report(
    bona_fide: Sequence[float], attacks: Mapping[str, Sequence[float]], threshold: float
) -> PadReport:
    species = [
        SpeciesReport(species=name, presentations=len(scores), apcer=apcer(scores, threshold))
        for name, scores in sorted(attacks.items())
    ]
    worst = max(s.apcer for s in species)
    b = bpcer(bona_fide, threshold)
    return PadReport(
        threshold=threshold,
        bona_fide_presentations=len(bona_fide),
        bpcer=b,
        acer=(worst + b) / 2,
        species=species,
        bpcer_at_apcer_5=bpcer_at_apcer(bona_fide, attacks, 0.05)[0],
        bpcer_at_apcer_1=bpcer_at_apcer(bona_fide, attacks, 0.01)[0],
    )
