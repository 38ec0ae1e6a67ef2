"""Face detection on real public-domain images (scikit-image's bundled samples)."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import Image
from skimage import data

from signgate.detectors.faces import (
    Face,
    ImageUndecodable,
    decode_image,
    detect_faces,
    face_chip,
)

# Eileen Collins' face in skimage.data.astronaut() (public domain, NASA), checked by eye:
# forehead to chin, ear to ear, roughly x 170-300, y 20-170.
ASTRONAUT_FACE = (170, 20, 300, 170)


def _overlap(box: tuple[int, int, int, int], ref: tuple[int, int, int, int]) -> float:
    """Fraction of `box` lying inside `ref`."""
    x0, y0 = max(box[0], ref[0]), max(box[1], ref[1])
    x1, y1 = min(box[2], ref[2]), min(box[3], ref[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter / ((box[2] - box[0]) * (box[3] - box[1]))


def _png(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "PNG")
    return out.getvalue()


def test_astronaut_has_exactly_one_face_where_her_face_is() -> None:
    faces = detect_faces(data.astronaut())
    assert len(faces) == 1  # the round mission patch (a weak 0.12 detection) is not a face
    face = faces[0]
    assert _overlap(face.box, ASTRONAUT_FACE) > 0.9
    assert 60 <= face.box[2] - face.box[0] <= 150
    assert face.score > 0.5
    assert len(face.landmarks) == 5
    x0, y0, x1, y1 = face.box
    assert all(x0 <= x <= x1 and y0 <= y <= y1 for x, y in face.landmarks)


def test_eyes_are_above_the_nose() -> None:
    face = detect_faces(data.astronaut())[0]
    eyes_y = [y for _, y in face.landmarks[:4]]
    nose_y = face.landmarks[4][1]
    assert max(eyes_y) < nose_y


def test_coffee_cup_has_no_face() -> None:
    assert detect_faces(data.coffee()) == []


def test_two_faces_are_found_largest_first() -> None:
    face = data.astronaut()[0:220, 140:330]
    canvas = np.full((300, 560, 3), 200, dtype=np.uint8)
    canvas[40:260, 0:190] = np.asarray(Image.fromarray(face).resize((190, 220)))
    small = np.asarray(Image.fromarray(face).resize((152, 176)))
    canvas[60:236, 330:482] = small
    faces = detect_faces(canvas)
    assert len(faces) == 2
    assert faces[0].box[0] < 190 < faces[1].box[0]  # the bigger (left) one first
    assert faces[0].area > faces[1].area


def test_decode_applies_exif_orientation() -> None:
    rgb = data.astronaut()
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(rgb[:, :300]).save(out, "JPEG", exif=exif.tobytes(), quality=95)
    decoded = decode_image(out.getvalue())
    assert decoded.shape == (300, 512, 3)  # stored 512x300, displayed 300 tall
    assert decoded.dtype == np.uint8


def test_decode_png_roundtrips_rgb() -> None:
    rgb = data.astronaut()
    assert np.array_equal(decode_image(_png(rgb)), rgb)


def test_decode_converts_gray_to_rgb() -> None:
    assert decode_image(_png(data.camera())).shape == (512, 512, 3)


@pytest.mark.parametrize("blob", [b"", b"not an image", _png(data.coffee())[:200]])
def test_undecodable_bytes_raise_a_reason_code(blob: bytes) -> None:
    with pytest.raises(ImageUndecodable) as info:
        decode_image(blob)
    assert info.value.reason == "image_undecodable"


def test_face_chip_is_aligned_square() -> None:
    rgb = data.astronaut()
    face = detect_faces(rgb)[0]
    chip = face_chip(rgb, face, size=150)
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8
    # the chip is a face: the detector finds it again, filling most of the chip
    again = detect_faces(np.asarray(Image.fromarray(chip).resize((300, 300))))
    assert len(again) == 1 and again[0].box[2] - again[0].box[0] > 120


def test_wrong_array_shape_is_refused() -> None:
    with pytest.raises(ValueError):
        detect_faces(data.camera())  # gray, 2-D


def test_concurrent_detection_gives_the_same_faces() -> None:
    rgb = data.astronaut()
    expected = detect_faces(rgb)
    results: list[list[Face]] = []

    def run() -> None:
        results.append(detect_faces(rgb))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 4
