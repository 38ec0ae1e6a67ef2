"""Face detection on real public-domain images (scikit-image's bundled samples)."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import Image
from skimage import data

from signgate.detectors import faces as faces_module
from signgate.detectors.faces import (
    Face,
    ImageFaces,
    ImageUndecodable,
    clear_image_cache,
    decode_image,
    detect_faces,
    face_chip,
    find_faces,
    image_faces,
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


# --------------------------------------------------------------------------- large images, cache


def _full_hd_selfie() -> np.ndarray:
    """The astronaut at 1080x1080 in the middle of a 1920x1080 frame (edges replicated)."""
    square = np.asarray(Image.fromarray(data.astronaut()).resize((1080, 1080)))
    return np.pad(square, ((0, 0), (420, 420), (0, 0)), mode="edge")


def test_a_large_image_is_detected_downscaled_and_mapped_back_to_full_resolution() -> None:
    rgb = _full_hd_selfie()
    faces = find_faces(rgb)
    assert len(faces) == 1
    face = faces[0]
    scale = 1080 / 512
    expected = (
        round(420 + ASTRONAUT_FACE[0] * scale),
        round(ASTRONAUT_FACE[1] * scale),
        round(420 + ASTRONAUT_FACE[2] * scale),
        round(ASTRONAUT_FACE[3] * scale),
    )
    assert _overlap(face.box, expected) > 0.9  # full-resolution coordinates
    assert 60 * scale <= face.box[2] - face.box[0] <= 150 * scale
    x0, y0, x1, y1 = face.box
    assert all(x0 <= x <= x1 and y0 <= y <= y1 for x, y in face.landmarks)
    # the landmarks are placed on the full-resolution pixels, not scaled up from the copy
    shape = faces_module._model("shape5")(rgb, faces_module._rect(face))
    assert face.landmarks == [(shape.part(i).x, shape.part(i).y) for i in range(5)]
    # and the box agrees with a detection on the full frame
    again = detect_faces(rgb, upsample=0)
    assert len(again) == 1 and _overlap(again[0].box, face.box) > 0.7


def test_a_small_image_is_detected_as_it_is() -> None:
    rgb = data.astronaut()
    assert find_faces(rgb) == detect_faces(rgb, upsample=1)


def test_image_faces_decodes_and_detects_once_per_image(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_image_cache()
    calls = {"decode": 0, "detect": 0}
    real_decode, real_find = faces_module.decode_image, faces_module.find_faces

    def counting_decode(blob: bytes) -> np.ndarray:
        calls["decode"] += 1
        return real_decode(blob)

    def counting_find(rgb: np.ndarray) -> list[Face]:
        calls["detect"] += 1
        return real_find(rgb)

    monkeypatch.setattr(faces_module, "decode_image", counting_decode)
    monkeypatch.setattr(faces_module, "find_faces", counting_find)
    blob = _png(data.astronaut())
    results: list[ImageFaces] = []
    threads = [threading.Thread(target=lambda: results.append(image_faces(blob))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results.append(image_faces(blob))
    assert calls == {"decode": 1, "detect": 1}
    assert all(r is results[0] for r in results)
    shared = results[0]
    assert np.array_equal(shared.rgb, data.astronaut())
    assert not shared.rgb.flags.writeable  # shared between detectors: nobody may edit it
    assert list(shared.faces) == find_faces(data.astronaut())
    image_faces(_png(data.coffee()))  # other bytes: decoded and detected again
    assert calls == {"decode": 2, "detect": 2}


def test_the_image_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_image_cache()
    monkeypatch.setattr(faces_module, "CACHE_ENTRIES", 2)
    blobs = [_png(np.full((64, 64 + i, 3), 100, np.uint8)) for i in range(4)]
    for blob in blobs:
        image_faces(blob)
    assert len(faces_module._cache) == 2
    monkeypatch.setattr(faces_module, "CACHE_MAX_BYTES", 64 * 66 * 3)  # one entry's bytes
    image_faces(blobs[0])
    assert len(faces_module._cache) == 1  # the newest is kept


def test_undecodable_bytes_are_not_cached() -> None:
    clear_image_cache()
    with pytest.raises(ImageUndecodable):
        image_faces(b"not an image")
    assert len(faces_module._cache) == 0 and faces_module._inflight == {}
