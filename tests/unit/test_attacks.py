"""The attack generators: deterministic, shape-preserving, each leaving its own trace."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from PIL.JpegImagePlugin import JpegImageFile
from skimage import data

from signgate import attacks

BOX = (179, 83, 267, 171)  # the astronaut's face


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


@pytest.mark.parametrize("make", [attacks.screen_recapture, attacks.print_attack])
def test_seeded_attacks_are_deterministic_and_keep_the_shape(astronaut: np.ndarray, make) -> None:
    first, again, other = make(astronaut, 1), make(astronaut, 1), make(astronaut, 2)
    assert first.shape == astronaut.shape and first.dtype == np.uint8
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_face_splice_changes_only_the_box_and_its_feathered_edge(astronaut: np.ndarray) -> None:
    spliced = attacks.face_splice(astronaut, data.chelsea(), BOX, seed=0)
    assert np.array_equal(spliced, attacks.face_splice(astronaut, data.chelsea(), BOX, seed=0))
    changed = np.abs(spliced.astype(int) - astronaut).max(axis=2) > 8
    ys, xs = np.nonzero(changed)
    x0, y0, x1, y1 = BOX
    assert changed[y0 + 10 : y1 - 10, x0 + 10 : x1 - 10].mean() > 0.8
    assert (
        xs.min() >= x0 - 10 and xs.max() <= x1 + 10 and ys.min() >= y0 - 10 and ys.max() <= y1 + 10
    )


def test_double_jpeg_carries_the_second_quality_tables(astronaut: np.ndarray) -> None:
    double = attacks.double_jpeg(astronaut, 60, 90)
    single = attacks.jpeg_bytes(astronaut, 90)
    with Image.open(io.BytesIO(double)) as a, Image.open(io.BytesIO(single)) as b:
        assert isinstance(a, JpegImageFile) and isinstance(b, JpegImageFile)
        assert a.quantization == b.quantization  # the tables alone cannot tell them apart
    assert double != single


def test_generator_upsample_leaves_a_period_two_brightness_grid(astronaut: np.ndarray) -> None:
    grey = attacks.generator_upsample(astronaut, 2).astype(float).mean(axis=2)
    assert grey.shape == astronaut.shape[:2]
    even, odd = grey[:, 0::2].mean(), grey[:, 1::2].mean()
    assert even - odd > 2.0  # the interpolated columns come out darker
    natural = astronaut.astype(float).mean(axis=2)
    assert abs(natural[:, 0::2].mean() - natural[:, 1::2].mean()) < 0.5


def test_strip_metadata_drops_exif_and_keeps_the_pixels(astronaut: np.ndarray) -> None:
    exif = Image.Exif()
    exif[0x010F] = "Evil Camera Co"  # Make
    out = io.BytesIO()
    Image.fromarray(astronaut).save(out, "JPEG", quality=90, exif=exif.tobytes())
    with_exif = out.getvalue()
    stripped = attacks.strip_metadata(with_exif)
    assert b"Evil Camera Co" in with_exif and b"Evil Camera Co" not in stripped
    with Image.open(io.BytesIO(stripped)) as a, Image.open(io.BytesIO(with_exif)) as b:
        assert not a.getexif()
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_strip_metadata_refuses_bytes_that_are_not_a_jpeg() -> None:
    with pytest.raises(ValueError, match="not a JPEG"):
        attacks.strip_metadata(b"GIF89a....")
