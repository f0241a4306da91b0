"""Image message payloads -> NumPy arrays, without copying where the encoding allows.

Plain Python (no rclpy): the node passes the fields of a ``sensor_msgs/Image`` or
``sensor_msgs/CompressedImage`` message, so this is testable without ROS.

What comes back, for every encoding: an ``[H, W, C]`` array, read-only.

- Colour (``rgb8``, ``bgr8``, ``rgba8``, ``bgra8``): ``uint8`` ``[H, W, 3]`` in **RGB** order, the
  order the model expects. ``bgr8``/``bgra8`` become RGB through a view with a negative channel
  stride and alpha is dropped by slicing, so these stay zero-copy too.
- One channel (``mono8``/``8UC1`` ``uint8``, ``mono16``/``16UC1`` ``uint16``, ``32FC1``
  ``float32``, e.g. depth in metres with NaN for no return): ``[H, W, 1]``.

Raw images are views of the message buffer (``np.shares_memory`` holds): rows honour ``step``
(padding is skipped by the row stride), so views need not be C-contiguous. Call
``np.ascontiguousarray`` before ``torch.from_numpy`` (which refuses negative strides); the model's
preprocessing copies once there anyway. The one raw case that copies is multi-byte data whose
byte order differs from the host's (e.g. ``is_bigendian`` ``16UC1`` on x86): it is converted to
native order so consumers never see a byte-swapped dtype. Compressed images (JPEG, PNG) are
decoded by Pillow, which necessarily allocates.

Anything that cannot be decoded raises :class:`ImageDecodeError` whose ``reason`` says what is
wrong (unsupported encoding, zero size, ``step`` too small, truncated or oversized data, corrupt
compressed data).
"""

from __future__ import annotations

import dataclasses
import io
import sys
from typing import Any

import numpy as np
from PIL import Image as PILImage
from PIL import UnidentifiedImageError


class ImageDecodeError(ValueError):
    """An image payload that cannot be turned into an array; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class PixelLayout:
    """How one encoding lays out a pixel in memory."""

    dtype: np.dtype  # of one channel, native byte order
    channels: int  # channels stored per pixel
    rgb_channels: tuple[int, ...] | None = None  # stored-channel indices giving R, G, B

    @property
    def bytes_per_pixel(self) -> int:
        return self.dtype.itemsize * self.channels


_UINT8 = np.dtype(np.uint8)
_UINT16 = np.dtype(np.uint16)
_FLOAT32 = np.dtype(np.float32)

# sensor_msgs/image_encodings names.
PIXEL_LAYOUTS: dict[str, PixelLayout] = {
    "rgb8": PixelLayout(_UINT8, 3, (0, 1, 2)),
    "bgr8": PixelLayout(_UINT8, 3, (2, 1, 0)),
    "rgba8": PixelLayout(_UINT8, 4, (0, 1, 2)),
    "bgra8": PixelLayout(_UINT8, 4, (2, 1, 0)),
    "mono8": PixelLayout(_UINT8, 1),
    "8UC1": PixelLayout(_UINT8, 1),
    "mono16": PixelLayout(_UINT16, 1),
    "16UC1": PixelLayout(_UINT16, 1),
    "32FC1": PixelLayout(_FLOAT32, 1),
}
SUPPORTED_ENCODINGS = tuple(PIXEL_LAYOUTS)
HOST_IS_BIG_ENDIAN = sys.byteorder == "big"

# Pillow formats accepted for CompressedImage, and the modes mapped onto the raw outputs above.
COMPRESSED_FORMATS = ("JPEG", "PNG")
_PIL_CONVERSIONS = {"RGB": "RGB", "RGBA": "RGB", "P": "RGB", "CMYK": "RGB", "YCbCr": "RGB"}
_PIL_CONVERSIONS |= {"L": "L", "LA": "L", "1": "L", "I;16": "I;16"}


def _byte_buffer(data: Any) -> memoryview:
    """A flat unsigned-byte view of ``data`` (bytes, bytearray, memoryview, array.array, ...)."""
    try:
        view = memoryview(data)
    except TypeError:
        raise ImageDecodeError(
            f"image data must be a bytes-like buffer, got {type(data).__name__}"
        ) from None
    if not view.contiguous:
        raise ImageDecodeError("image data buffer is not contiguous")
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def image_to_array(
    encoding: str, height: int, width: int, step: int, is_bigendian: bool | int, data: Any
) -> np.ndarray:
    """The pixels of a ``sensor_msgs/Image`` as a read-only ``[H, W, C]`` array (see module doc).

    ``data`` is the message's buffer as rclpy gives it (``array.array('B')``) or any bytes-like
    object; the result is a view of it whenever the byte order is native.
    """
    layout = PIXEL_LAYOUTS.get(encoding)
    if layout is None:
        raise ImageDecodeError(
            f"unsupported encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
        )
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f"image has zero size ({height=}, {width=})")
    row_bytes = width * layout.bytes_per_pixel
    if step < row_bytes:
        raise ImageDecodeError(
            f"step {step} is smaller than width * bytes per pixel = {width} * "
            f"{layout.bytes_per_pixel} = {row_bytes} for {encoding}"
        )
    buffer = _byte_buffer(data)
    expected = step * height
    if len(buffer) < expected:
        raise ImageDecodeError(
            f"image data is truncated: {len(buffer)} bytes, expected step * height = "
            f"{step} * {height} = {expected}"
        )
    if len(buffer) > expected:
        raise ImageDecodeError(
            f"image data has {len(buffer)} bytes, more than step * height = {step} * {height} "
            f"= {expected}: height or step is wrong"
        )

    swapped = bool(is_bigendian) != HOST_IS_BIG_ENDIAN and layout.dtype.itemsize > 1
    stored_dtype = layout.dtype.newbyteorder() if swapped else layout.dtype
    itemsize = layout.dtype.itemsize
    pixels = np.ndarray(
        shape=(height, width, layout.channels),
        dtype=stored_dtype,
        buffer=buffer,
        strides=(step, layout.bytes_per_pixel, itemsize),
    )
    if swapped:
        pixels = pixels.astype(layout.dtype)  # the one copying case: foreign byte order
    if layout.rgb_channels == (0, 1, 2) and layout.channels == 4:
        pixels = pixels[:, :, :3]
    elif layout.rgb_channels == (2, 1, 0):
        pixels = pixels[:, :, 2::-1]
    pixels.flags.writeable = False
    return pixels


def compressed_image_to_array(format: str, data: Any) -> np.ndarray:
    """A ``sensor_msgs/CompressedImage`` (JPEG or PNG) decoded by Pillow: ``[H, W, C]``, read-only.

    ``format`` is the message's field (e.g. ``"jpeg"``, ``"png"``, ``"bgr8; jpeg compressed
    bgr8"``); the codec is detected from the data and must be JPEG or PNG. Colour becomes RGB
    ``uint8`` ``[H, W, 3]``; grey ``uint8`` ``[H, W, 1]``; 16-bit grey PNG ``uint16``
    ``[H, W, 1]``. ``compressedDepth`` payloads (an extra header before the PNG) are rejected.
    """
    if "compresseddepth" in format.lower():
        raise ImageDecodeError(f"compressedDepth images are not supported (format {format!r})")
    payload = bytes(_byte_buffer(data))
    if not payload:
        raise ImageDecodeError("compressed image data is empty")
    try:
        with PILImage.open(io.BytesIO(payload)) as image:
            if image.format not in COMPRESSED_FORMATS:
                raise ImageDecodeError(
                    f"compressed image is {image.format}, expected one of {COMPRESSED_FORMATS}"
                )
            target_mode = _PIL_CONVERSIONS.get(image.mode)
            if target_mode is None:
                raise ImageDecodeError(f"unsupported {image.format} pixel mode {image.mode!r}")
            image.load()  # decodes now: corrupt or truncated data fails here
            converted = image if image.mode == target_mode else image.convert(target_mode)
            pixels = np.asarray(converted)
    except ImageDecodeError:
        raise
    except UnidentifiedImageError:
        raise ImageDecodeError(
            f"compressed image data is not a recognisable image (format {format!r}, "
            f"{len(payload)} bytes)"
        ) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageDecodeError(
            f"cannot decode compressed image (format {format!r}): {error}"
        ) from error
    if pixels.ndim == 2:
        pixels = pixels[:, :, np.newaxis]
    if pixels.dtype.byteorder not in ("=", "|"):
        pixels = pixels.astype(pixels.dtype.newbyteorder("="))
    pixels.flags.writeable = False
    return pixels
