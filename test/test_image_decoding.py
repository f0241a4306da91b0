"""Image payloads -> arrays: zero-copy views, step padding, byte order, RGB order, rejections."""

from __future__ import annotations

import array
import io

import numpy as np
import pytest
from PIL import Image

from wallwm_ros.image_decoding import (
    HOST_IS_BIG_ENDIAN,
    ImageDecodeError,
    compressed_image_to_array,
    image_to_array,
)

RNG = np.random.default_rng(5)
H, W = 6, 7


def padded_payload(pixels: np.ndarray, padding: int = 0) -> tuple[int, array.array]:
    """(step, rclpy-style array('B') buffer) for ``pixels`` [H, W, C] with row padding bytes."""
    rows = pixels.reshape(pixels.shape[0], -1).view(np.uint8)
    padded = np.concatenate([rows, np.full((rows.shape[0], padding), 0xAB, np.uint8)], axis=1)
    return padded.shape[1], array.array("B", padded.tobytes())


def source_bytes(data: array.array) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8)


@pytest.mark.parametrize(
    ("encoding", "dtype", "channels"),
    [
        ("rgb8", np.uint8, 3),
        ("mono8", np.uint8, 1),
        ("8UC1", np.uint8, 1),
        ("mono16", np.uint16, 1),
        ("16UC1", np.uint16, 1),
        ("32FC1", np.float32, 1),
    ],
)
@pytest.mark.parametrize("padding", [0, 5])
def test_raw_encodings_are_zero_copy_views(encoding, dtype, channels, padding):
    pixels = (RNG.random((H, W, channels)) * 1000).astype(dtype)
    step, data = padded_payload(pixels, padding)
    out = image_to_array(encoding, H, W, step, HOST_IS_BIG_ENDIAN, data)
    assert out.shape == (H, W, channels)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, pixels)
    assert np.shares_memory(out, source_bytes(data))
    assert not out.flags.writeable


def test_32fc1_keeps_nan_depth():
    depth = np.full((H, W, 1), np.nan, np.float32)
    depth[2, 3] = 1.25
    step, data = padded_payload(depth)
    out = image_to_array("32FC1", H, W, step, HOST_IS_BIG_ENDIAN, data)
    assert np.isnan(out[0, 0, 0]) and out[2, 3, 0] == np.float32(1.25)


@pytest.mark.parametrize("padding", [0, 3])
def test_bgr_and_alpha_encodings_become_rgb_views(padding):
    rgb = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
    alpha = RNG.integers(0, 256, (H, W, 1), dtype=np.uint8)
    stored = {
        "rgb8": rgb,
        "bgr8": rgb[:, :, ::-1],
        "rgba8": np.concatenate([rgb, alpha], axis=2),
        "bgra8": np.concatenate([rgb[:, :, ::-1], alpha], axis=2),
    }
    for encoding, pixels in stored.items():
        step, data = padded_payload(np.ascontiguousarray(pixels), padding)
        out = image_to_array(encoding, H, W, step, HOST_IS_BIG_ENDIAN, data)
        assert out.shape == (H, W, 3), encoding
        np.testing.assert_array_equal(out, rgb, err_msg=encoding)
        assert np.shares_memory(out, source_bytes(data)), encoding


def test_accepts_bytes_bytearray_and_memoryview():
    pixels = RNG.integers(0, 256, (H, W, 1), dtype=np.uint8)
    raw = pixels.tobytes()
    for data in (raw, bytearray(raw), memoryview(raw)):
        out = image_to_array("mono8", H, W, W, False, data)
        np.testing.assert_array_equal(out, pixels)


@pytest.mark.parametrize("padding", [0, 2])
def test_foreign_byte_order_16uc1_is_converted_to_native(padding):
    depth = RNG.integers(0, 65536, (H, W, 1)).astype(np.uint16)
    foreign = depth.astype(depth.dtype.newbyteorder())  # same values, swapped bytes in memory
    step, data = padded_payload(foreign, padding)
    out = image_to_array("16UC1", H, W, step, not HOST_IS_BIG_ENDIAN, data)
    assert out.dtype == np.dtype(np.uint16) and out.dtype.isnative
    np.testing.assert_array_equal(out, depth)
    # Read with the wrong flag, the same bytes give different values: the flag is honoured.
    wrong = image_to_array("16UC1", H, W, step, HOST_IS_BIG_ENDIAN, data)
    assert not np.array_equal(wrong, depth)


def test_big_endian_flag_is_irrelevant_for_single_byte_encodings():
    pixels = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
    step, data = padded_payload(pixels)
    out = image_to_array("rgb8", H, W, step, True, data)
    np.testing.assert_array_equal(out, pixels)
    assert np.shares_memory(out, source_bytes(data))


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        (dict(encoding="yuv422"), "unsupported encoding 'yuv422'"),
        (dict(encoding="bayer_rggb8"), "unsupported encoding"),
        (dict(height=0, step=0, data=b""), "zero size"),
        (dict(width=0), "zero size"),
        (dict(step=3 * W - 1), "smaller than width * bytes per pixel"),
        (dict(data=bytes(3 * W * H - 1)), "truncated"),
        (dict(data=b""), "truncated"),
        (dict(data=bytes(3 * W * H + 3 * W)), "more than step * height"),
        (dict(data=[0] * (3 * W * H)), "bytes-like buffer"),
    ],
)
def test_rejected_images_name_the_reason(kwargs, fragment):
    message = dict(
        encoding="rgb8", height=H, width=W, step=3 * W, is_bigendian=False, data=bytes(3 * W * H)
    )
    message.update(kwargs)
    with pytest.raises(ImageDecodeError) as caught:
        image_to_array(**message)
    assert fragment in caught.value.reason
    assert isinstance(caught.value, ValueError)


def test_step_too_small_for_16_bit():
    with pytest.raises(ImageDecodeError, match="2 = 14"):
        image_to_array("16UC1", H, W, 2 * W - 1, False, bytes((2 * W - 1) * H))


def encode(pixels: np.ndarray, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=format, **options)
    return buffer.getvalue()


def test_png_round_trips_colour_grey_and_16_bit():
    rgb = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
    grey = RNG.integers(0, 256, (H, W), dtype=np.uint8)
    depth = RNG.integers(0, 65536, (H, W)).astype(np.uint16)
    out = compressed_image_to_array("png", array.array("B", encode(rgb, "PNG")))
    np.testing.assert_array_equal(out, rgb)
    out = compressed_image_to_array("mono8; png compressed", encode(grey, "PNG"))
    np.testing.assert_array_equal(out, grey[:, :, None])
    out = compressed_image_to_array("png", encode(depth, "PNG"))
    assert out.dtype == np.uint16 and out.shape == (H, W, 1)
    np.testing.assert_array_equal(out[:, :, 0], depth)


def test_png_with_alpha_becomes_rgb():
    rgba = RNG.integers(0, 256, (H, W, 4), dtype=np.uint8)
    out = compressed_image_to_array("png", encode(rgba, "PNG"))
    np.testing.assert_array_equal(out, rgba[:, :, :3])


def test_jpeg_round_trip_is_close():
    # A smooth image, so JPEG's loss stays small.
    rows, cols = np.mgrid[0:32, 0:48]
    rgb = np.stack([rows * 6, cols * 5, (rows + cols) * 3], axis=2).astype(np.uint8)
    out = compressed_image_to_array("bgr8; jpeg compressed bgr8", encode(rgb, "JPEG", quality=95))
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - rgb.astype(int)).mean() < 3.0
    assert not out.flags.writeable


def corrupt_after(data: bytes, marker: bytes, size: int = 200) -> bytes:
    """``data`` with ``size`` bytes zeroed just after ``marker`` (headers intact, payload broken)."""
    start = data.index(marker) + 8
    return data[:start] + bytes(size) + data[start + size :]


@pytest.mark.parametrize(
    ("make_data", "fragment"),
    [
        (lambda png, jpg: b"", "empty"),
        (lambda png, jpg: b"not an image at all" * 4, "not a recognisable image"),
        (lambda png, jpg: png[: len(png) - 40], "cannot decode"),
        (lambda png, jpg: jpg[: len(jpg) // 2], "cannot decode"),
        (lambda png, jpg: corrupt_after(png, b"IDAT"), "cannot decode"),
        (lambda png, jpg: jpg[:300] + bytes(500) + jpg[800:], "cannot decode"),
    ],
)
def test_corrupt_compressed_images_are_rejected(make_data, fragment):
    pixels = RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    data = make_data(encode(pixels, "PNG"), encode(pixels, "JPEG"))
    with pytest.raises(ImageDecodeError) as caught:
        compressed_image_to_array("png", data)
    assert fragment in caught.value.reason


def test_other_codecs_and_compressed_depth_are_rejected():
    pixels = RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    with pytest.raises(ImageDecodeError, match="expected one of"):
        compressed_image_to_array("bmp", encode(pixels, "BMP"))
    with pytest.raises(ImageDecodeError, match="compressedDepth"):
        compressed_image_to_array("16UC1; compressedDepth png", encode(pixels, "PNG"))
