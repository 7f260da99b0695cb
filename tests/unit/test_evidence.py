"""Photo evidence in (handlers/evidence.py): what a served image keeps of what a phone sent."""
from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import ExifTags, Image, PngImagePlugin

from handlers import evidence
from handlers.evidence import Problem
from schemas.evidence import MediaType

SERIAL, OWNER, MAKE = "SN-998877", "王业主 Wang Owner", "AcmeCam"


def phone_jpeg(size=(640, 480), orientation: int | None = None, gps: bool = True) -> bytes:
    """A JPEG as a phone writes it: camera, owner and serial number in its EXIF, and where it was taken."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = MAKE
    exif[ExifTags.Base.Model] = "X100"
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.IFD.Exif] = {ExifTags.Base.BodySerialNumber: SERIAL, ExifTags.Base.CameraOwnerName: OWNER}
    if gps:
        exif[ExifTags.IFD.GPSInfo] = {
            ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: (22.0, 30.0, 36.0),
            ExifTags.GPS.GPSLongitudeRef: "E", ExifTags.GPS.GPSLongitude: (113.0, 54.0, 18.0)}
    out = io.BytesIO()
    Image.new("RGB", size, (200, 100, 50)).save(out, "JPEG", exif=exif)
    return out.getvalue()


def test_the_served_jpeg_keeps_the_position_as_fields_and_drops_camera_owner_and_serial():
    sent = phone_jpeg()
    assert SERIAL.encode() in sent and MAKE.encode() in sent  # the test's own input carries them
    done = evidence.process(sent)
    assert isinstance(done, evidence.Processed)
    assert (done.lat, done.lon) == (22.51, 113.905)  # 22°30'36" N, 113°54'18" E
    served = Image.open(io.BytesIO(done.image))
    assert served.format == "JPEG" and done.media_type is MediaType.jpeg
    assert dict(served.getexif()) == {}
    for secret in (SERIAL.encode(), MAKE.encode(), OWNER.encode(), b"Exif"):
        assert secret not in done.image and secret not in done.thumbnail


def test_a_photo_is_turned_upright_by_its_orientation_before_the_exif_goes():
    done = evidence.process(phone_jpeg(size=(640, 480), orientation=6))  # 6: rotate 90° to view
    assert (done.width, done.height) == (480, 640)
    assert Image.open(io.BytesIO(done.image)).size == (480, 640)


def test_without_gps_there_is_no_position():
    done = evidence.process(phone_jpeg(gps=False))
    assert (done.lat, done.lon) == (None, None)


def test_a_png_keeps_its_format_and_loses_its_text_chunks():
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", f"serial {SERIAL}")
    out = io.BytesIO()
    Image.new("RGBA", (300, 200), (0, 0, 255, 128)).save(out, "PNG", pnginfo=info)
    done = evidence.process(out.getvalue())
    assert done.media_type is MediaType.png and SERIAL.encode() not in done.image
    assert Image.open(io.BytesIO(done.image)).mode == "RGBA"
    assert Image.open(io.BytesIO(done.thumbnail)).format == "JPEG"


def test_the_same_picture_uploaded_twice_is_one_image():
    assert evidence.process(phone_jpeg()).sha256 == evidence.process(phone_jpeg()).sha256


def test_a_large_photo_is_stored_at_the_longest_side_allowed_with_a_small_thumbnail():
    done = evidence.process(phone_jpeg(size=(6000, 3000)))
    assert (done.width, done.height) == (evidence.MAX_SIDE, evidence.MAX_SIDE // 2)
    assert max(Image.open(io.BytesIO(done.thumbnail)).size) == evidence.THUMB_SIDE


def test_a_decompression_bomb_is_refused_from_its_header():
    # 400 megapixels in 48 KB: refused before a pixel is decoded.
    out = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(out, "PNG")
    assert len(out.getvalue()) < 100_000
    refused = evidence.process(out.getvalue())
    assert refused == evidence.Refused(Problem.too_many_pixels)
    assert "百万像素" in refused.message


def test_the_pixel_bound_is_the_callers():
    assert evidence.process(phone_jpeg(size=(640, 480)), max_pixels=640 * 480 - 1) == \
        evidence.Refused(Problem.too_many_pixels)


@pytest.mark.parametrize("data", [b"", b"hello, not an image", b"%PDF-1.7\n", phone_jpeg()[:400]])
def test_what_is_not_an_image_is_refused(data):
    assert evidence.process(data) == evidence.Refused(Problem.not_an_image)


def test_other_image_formats_are_refused():
    out = io.BytesIO()
    Image.new("RGB", (10, 10)).save(out, "GIF")
    assert evidence.process(out.getvalue()) == evidence.Refused(Problem.unsupported)


def test_a_stored_record_reads_back_and_a_damaged_one_is_refused():
    done = evidence.process(phone_jpeg())
    value = evidence.pack(done)
    stored = evidence.unpack(value)
    assert (stored.sha256, stored.image, stored.thumbnail, stored.lat) == (done.sha256, done.image, done.thumbnail,
                                                                           done.lat)
    with pytest.raises(evidence.BadRecord):
        evidence.unpack(value[:-len(done.thumbnail) - 10])
    with pytest.raises(evidence.BadRecord):
        evidence.unpack(b"\x00\x00")


def test_a_workers_image_cache_keeps_the_latest_served_within_its_bound(monkeypatch):
    from streams import evidence_store
    monkeypatch.setattr(evidence_store, "CACHE_BYTES", 1000)
    store = evidence_store.EvidenceStore(None, "soc", [], {})  # the cache alone: no Redis or Kafka call is made

    def stored(n: int, size: int) -> evidence.Stored:
        return evidence.Stored(sha256=f"{n:064x}", media_type=MediaType.jpeg, width=1, height=1, image=b"i" * size,
                               thumbnail=b"t" * 10, lat=None, lon=None)

    for n in range(10):
        store._keep(stored(n, 290))
    assert list(store._cache) == [f"{n:064x}" for n in (7, 8, 9)] and store._cached_bytes == 900
    store._keep(stored(99, 5000))  # larger than the whole cache: served, never kept
    assert f"{99:064x}" not in store._cache and store._cached_bytes == 900


def test_a_48_megapixel_photo_is_decoded_small_and_kept_at_the_longest_side_allowed():
    done = evidence.process(phone_jpeg(size=(8000, 6000)))
    assert (done.width, done.height) == (4000, 3000) and (done.lat, done.lon) == (22.51, 113.905)


@pytest.mark.parametrize("mode, fmt", [("I;16", "PNG"), ("1", "PNG"), ("P", "PNG"), ("LA", "PNG"), ("CMYK", "JPEG"),
                                       ("L", "JPEG")])
def test_every_mode_a_jpeg_or_png_comes_in_is_written_again(mode, fmt):
    out = io.BytesIO()
    Image.new(mode, (50, 40)).save(out, fmt)
    done = evidence.process(out.getvalue())
    assert isinstance(done, evidence.Processed) and Image.open(io.BytesIO(done.image)).size == (50, 40)
    assert Image.open(io.BytesIO(done.thumbnail)).format == "JPEG"


_SEED_PNG = io.BytesIO()
Image.new("RGBA", (16, 12), (1, 2, 3, 4)).save(_SEED_PNG, "PNG")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from([phone_jpeg(size=(16, 12)), _SEED_PNG.getvalue()]),
       cuts=st.lists(st.tuples(st.integers(0, 10_000), st.binary(max_size=8)), max_size=4))
def test_a_damaged_photo_is_processed_or_refused_never_raises(seed, cuts):
    data = bytearray(seed)
    for at, junk in cuts:  # bytes overwritten here and there, as a bad radio link or a hostile client would
        at %= len(data)
        data[at:at + len(junk)] = junk
    assert isinstance(evidence.process(bytes(data)), evidence.Processed | evidence.Refused)
