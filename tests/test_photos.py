"""Photos are checked by their content (hub/desk/photos.py): a table of good and bad
images, and the store's 0700 folders and 0600 files."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gridcall.hub.desk.photos import BadPhoto, PhotoStore, PhotoTooLarge, check
from tests.images import jpeg, png

GOOD = [
    ("png rgb", png(4, 3), "png", 4, 3),
    ("png palette 1-bit", png(9, 2, depth=1, colour=3), "png", 9, 2),
    ("jpeg colour", jpeg(16, 8), "jpg", 16, 8),
    ("jpeg grey", jpeg(640, 480, components=1), "jpg", 640, 480),
]


@pytest.mark.parametrize(("name", "data", "kind", "width", "height"), GOOD,
                         ids=[g[0] for g in GOOD])
def test_good_images_are_read_for_what_they_are(name: str, data: bytes, kind: str,
                                                width: int, height: int) -> None:
    photo = check(data, max_bytes=10**6)
    assert (photo.type, photo.width, photo.height, photo.size) == (kind, width, height,
                                                                   len(data))
    assert photo.id.endswith(f".{kind}")


def _bad_crc() -> bytes:
    data = bytearray(png())
    data[20] ^= 0x01  # the width's last byte: the IHDR CRC no longer matches
    return bytes(data)


BAD = [
    ("text", b"hello, this is not an image", "not a JPEG or PNG"),
    ("gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "not a JPEG or PNG"),
    ("empty", b"", "not a JPEG or PNG"),
    ("png named jpeg but cut", png()[:20], "too short"),
    ("png bad crc", _bad_crc(), "CRC"),
    ("png impossible depth", png(depth=3), "bit depth 3"),
    ("png of no pixels", png(0, 3), "0x3 pixels"),
    ("jpeg without a frame", jpeg(frame=False), "without a frame header"),
    ("jpeg of no pixels", jpeg(0, 8), "0x8 pixels"),
    ("jpeg cut in its header", jpeg()[:30], "JPEG"),
]


@pytest.mark.parametrize(("name", "data", "why"), BAD, ids=[b[0] for b in BAD])
def test_anything_else_is_refused_saying_why(name: str, data: bytes, why: str) -> None:
    with pytest.raises(BadPhoto, match=why):
        check(data, max_bytes=10**6)


def test_a_photo_over_the_limit_is_refused_before_it_is_read() -> None:
    big = png(pad=5000)
    with pytest.raises(PhotoTooLarge, match=f"{len(big)} bytes; at most 4096"):
        check(big, max_bytes=4096)
    assert check(big, max_bytes=len(big)).size == len(big)


def test_the_store_keeps_each_photo_once_private(tmp_path: Path) -> None:
    store = PhotoStore(tmp_path / "photos")
    data = jpeg()
    photo = check(data, max_bytes=10**6)
    path = store.put(photo, data)
    assert store.put(photo, data) == path
    assert store.get(photo.id) == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "photos").stat().st_mode) == 0o700
    assert store.get("0" * 40 + ".png") is None
    with pytest.raises(BadPhoto, match="not a photo id"):
        store.get("../hub.sqlite")
