"""Photo evidence in: an uploaded file decoded, bounded, stripped and re-encoded, no I/O.

Nothing a client sent is ever stored or served as it came: the image is decoded with Pillow, refused past
MAX_PIXELS before its pixels are decoded (a decompression bomb declares its size in its header), turned
upright by its EXIF orientation, scaled to MAX_SIDE, and written again from the bare pixels, so no EXIF,
XMP, ICC profile or text chunk goes out; only the GPS position is read from the EXIF and kept as fields.
The image's name is the SHA-256 of the bytes written, so the same picture uploaded twice is one image.

The stored record (soc.evidence) is `pack`ed: a 4-byte length, a JSON header, the image, the thumbnail.
"""
from __future__ import annotations

import hashlib
import io
import struct
from dataclasses import dataclass
from enum import Enum

import orjson
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from schemas.evidence import MediaType

# An upload's file at most (the request may carry a little more: the form's other fields).
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
# A 48-megapixel phone photo passes; a bomb (a small PNG declaring 100000 x 100000) does not.
MAX_PIXELS = 50_000_000
# The stored image's longest side: a 12-megapixel photo is kept at 4000 px, larger ones scaled down,
# so a stored record stays well under the topic's max.message.bytes (streams/topics.py).
MAX_SIDE = 4096
# What a re-encoded image may weigh (a noise-like PNG can be larger than its upload): refused past it.
MAX_STORED_BYTES = 12 * 1024 * 1024
THUMB_SIDE = 320
JPEG_QUALITY = 85
THUMB_QUALITY = 70

_FORMATS = {"JPEG": MediaType.jpeg, "PNG": MediaType.png}


class Problem(str, Enum):
    not_an_image = "not_an_image"
    unsupported = "unsupported"
    too_many_pixels = "too_many_pixels"
    too_large = "too_large"


_WORDS = {
    Problem.not_an_image: "不是可识别的图片 (not an image Pillow can read)",
    Problem.unsupported: "只接受 JPEG 或 PNG 图片 (only JPEG and PNG images are accepted)",
    Problem.too_many_pixels: f"图片像素过多，上限 {MAX_PIXELS // 1_000_000} 百万像素 "
                             f"(over {MAX_PIXELS // 1_000_000} megapixels: refused)",
    Problem.too_large: "图片重新编码后过大 (the re-encoded image is too large)",
}


@dataclass(frozen=True)
class Refused:
    problem: Problem

    @property
    def message(self) -> str:
        return _WORDS[self.problem]


@dataclass(frozen=True)
class Processed:
    sha256: str
    media_type: MediaType
    width: int
    height: int
    image: bytes
    thumbnail: bytes  # always a JPEG
    lat: float | None = None
    lon: float | None = None


def process(data: bytes, max_pixels: int = MAX_PIXELS) -> Processed | Refused:
    """The upload as it will be stored and served, or why it is refused."""
    # Pillow's own limit (Image.MAX_IMAGE_PIXELS, process-wide) is left as it is: past it Pillow warns, past twice
    # it raises; the bound here is MAX_PIXELS, below both. Its warnings are not silenced here: catching them
    # changes the process's warning filters, which the decodes running on threads would race on.
    try:
        source = Image.open(io.BytesIO(data))
        if source.format not in _FORMATS:
            return Refused(Problem.unsupported)
        width, height = source.size
        if width * height > max_pixels:
            return Refused(Problem.too_many_pixels)
        position = gps_position(source.getexif())
        if source.format == "JPEG":
            # Decoded at 1/2, 1/4 or 1/8 scale while its longest side stays over MAX_SIDE / 2 (Pillow keeps
            # both sides at least the size asked): a 48-megapixel photo decodes at 4000 x 3000, in a
            # quarter of the memory and time; a 12-megapixel one at full size.
            source.draft("RGB", (MAX_SIDE // 2, MAX_SIDE // 2))
        source.load()
        media_type = _FORMATS[source.format]
        # Still inside: a malformed file may decode and then fail to turn or convert (an odd mode).
        bare = _bare(ImageOps.exif_transpose(source), media_type)
    except Image.DecompressionBombError:
        return Refused(Problem.too_many_pixels)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error):
        # Pillow reports a truncated or malformed file with any of these.
        return Refused(Problem.not_an_image)
    bare.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    image = _encode(bare, media_type)
    if len(image) > MAX_STORED_BYTES:
        return Refused(Problem.too_large)
    small = _bare(bare, MediaType.jpeg)
    small.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    lat, lon = position if position else (None, None)
    return Processed(sha256=hashlib.sha256(image).hexdigest(), media_type=media_type, width=bare.width,
                     height=bare.height, image=image, thumbnail=_encode(small, MediaType.jpeg, THUMB_QUALITY),
                     lat=lat, lon=lon)


def _bare(image: Image.Image, media_type: MediaType) -> Image.Image:
    """The pixels alone in a new image (no info, EXIF, ICC profile or text chunks to carry along), in a mode
    the format writes: JPEG has no alpha, so a transparent PNG's thumbnail is laid on white."""
    if media_type is MediaType.jpeg and image.mode not in ("RGB", "L"):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        image = flat
    elif media_type is MediaType.png and image.mode not in ("RGB", "RGBA", "L", "LA"):
        image = image.convert("RGBA")
    return Image.frombytes(image.mode, image.size, image.tobytes())


def _encode(image: Image.Image, media_type: MediaType, quality: int = JPEG_QUALITY) -> bytes:
    out = io.BytesIO()
    if media_type is MediaType.jpeg:
        image.save(out, "JPEG", quality=quality)
    else:
        image.save(out, "PNG")
    return out.getvalue()


def gps_position(exif: Image.Exif) -> tuple[float, float] | None:
    """(lat, lon) in degrees from the EXIF GPS block, or None when absent or not a position on Earth."""
    try:
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
        lat = _degrees(gps[ExifTags.GPS.GPSLatitude], gps.get(ExifTags.GPS.GPSLatitudeRef, "N"), "S")
        lon = _degrees(gps[ExifTags.GPS.GPSLongitude], gps.get(ExifTags.GPS.GPSLongitudeRef, "E"), "W")
    except (KeyError, TypeError, ValueError, ZeroDivisionError, AttributeError):
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return round(lat, 7), round(lon, 7)


def _degrees(dms, ref, negative: str) -> float:
    degrees, minutes, seconds = (float(part) for part in dms)
    value = degrees + minutes / 60 + seconds / 3600
    ref = ref.decode() if isinstance(ref, bytes) else str(ref)
    return -value if ref.strip().upper() == negative else value


# ------------------------------------------------------------------ the stored record

@dataclass(frozen=True)
class Stored:
    sha256: str
    media_type: MediaType
    width: int
    height: int
    image: bytes
    thumbnail: bytes
    lat: float | None
    lon: float | None


def pack(processed: Processed) -> bytes:
    header = orjson.dumps({"sha256": processed.sha256, "media_type": processed.media_type.value,
                           "width": processed.width, "height": processed.height, "lat": processed.lat,
                           "lon": processed.lon, "image": len(processed.image),
                           "thumbnail": len(processed.thumbnail)})
    return struct.pack(">I", len(header)) + header + processed.image + processed.thumbnail


class BadRecord(ValueError):
    """A soc.evidence value that is not a packed record (never written by this code)."""


def unpack(value: bytes) -> Stored:
    try:
        (size,) = struct.unpack_from(">I", value)
        header = orjson.loads(value[4:4 + size])
        start = 4 + size
        image = value[start:start + header["image"]]
        thumbnail = value[start + header["image"]:start + header["image"] + header["thumbnail"]]
        if len(image) != header["image"] or len(thumbnail) != header["thumbnail"] \
                or hashlib.sha256(image).hexdigest() != header["sha256"]:
            raise BadRecord("the record's image does not match its header")
        return Stored(sha256=header["sha256"], media_type=MediaType(header["media_type"]), width=header["width"],
                      height=header["height"], image=image, thumbnail=thumbnail, lat=header["lat"],
                      lon=header["lon"])
    except (struct.error, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, BadRecord):
            raise
        raise BadRecord(str(exc)) from None
