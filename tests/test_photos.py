"""Photos are checked by their content (hub/desk/photos.py): a table of good and bad
images; the desk store keeps each once (both stores), the old folder's 0700 folders and
0600 files, and the import of what an earlier version kept on disk."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gridcall.hub.desk.photos import BadPhoto, PhotoFolder, PhotoStore, PhotoTooLarge, check
from gridcall.hub.store import StoreConflict
from tests.desk_stores import DeskStores
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


def test_the_old_folder_keeps_each_photo_once_private(tmp_path: Path) -> None:
    folder = PhotoFolder(tmp_path / "photos")
    data = jpeg()
    photo = check(data, max_bytes=10**6)
    path = folder.put(photo, data)
    assert folder.put(photo, data) == path
    assert folder.get(photo.id) == data
    assert folder.ids() == [photo.id]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "photos").stat().st_mode) == 0o700
    assert folder.get("0" * 40 + ".png") is None
    with pytest.raises(BadPhoto, match="not a photo id"):
        folder.get("../hub.sqlite")


async def test_the_store_keeps_each_photo_once_and_never_changes_it(
        desk_stores: DeskStores) -> None:
    data = jpeg()
    photo = check(data, max_bytes=10**6)
    async with desk_stores.open() as store:
        photos = PhotoStore(store)
        assert await photos.put(photo, data)
        assert not await photos.put(photo, data)  # the same bytes: the same row
        assert await photos.get(photo.id) == data
        assert await photos.get("0" * 40 + ".png") is None
        with pytest.raises(BadPhoto, match="not a photo id"):
            await photos.get("../hub.sqlite")
        for sql in ("UPDATE photos SET size = 0", "DELETE FROM photos"):
            with pytest.raises(StoreConflict, match="append-only"):
                await store.sql(lambda db, sql=sql: db.execute(sql))
    async with desk_stores.open() as store:  # a restart, or the other hub of a pair
        assert await PhotoStore(store).get(photo.id) == data


async def test_photos_an_earlier_version_kept_on_disk_are_imported_once(
        desk_stores: DeskStores, tmp_path: Path) -> None:
    """Until imported, a photo of the old folder is served from it; the import writes
    each once, checked again by its content, and names a file that is not what its name
    says; the folder is left as it was."""
    folder = PhotoFolder(tmp_path / "hub-photos")
    old = [png(4, 3), jpeg(16, 8)]
    ids = [folder.put(check(d, max_bytes=10**6), d).name for d in old]
    forged = folder.path("f" * 40 + ".png")
    forged.parent.mkdir(mode=0o700)
    forged.write_bytes(png(5, 5))  # a file whose content is another photo
    async with desk_stores.open() as store:
        photos = PhotoStore(store, legacy=folder.root)
        assert await photos.get(ids[0]) == old[0]  # from the folder, not imported yet
        written, skipped = await photos.import_folder()
        assert written == 2
        assert len(skipped) == 1
        assert skipped[0].startswith(f"{forged.name}: its content is ")
        assert (await photos.import_folder())[0] == 0  # once
    async with desk_stores.open() as store:  # a hub without the folder: the store has them
        alone = PhotoStore(store, legacy=tmp_path / "elsewhere")
        assert [await alone.get(i) for i in ids] == old
        assert await alone.get(forged.name) is None
    assert sorted(folder.ids()) == sorted([*ids, forged.name])
