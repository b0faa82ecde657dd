"""Raw inputs as the browser sees them: kept images rendered to PNG (Pillow) server-side, and an uploaded
picture turned into the pixels the collection's encoder takes."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image, UnidentifiedImageError

from simsearch.contract.errors import invalid
from simsearch.protos.simsearch.v1 import common_pb2

MIN_SIDE = 96  # small images (8x8 digits) are scaled up, pixels kept square
MAX_UPLOAD_BYTES = 8 << 20


def png(pixels: np.ndarray) -> bytes:
    """One image (C, H, W) uint8 as PNG, scaled up by a whole factor until its shorter side is MIN_SIDE."""
    c, h, w = pixels.shape
    image = Image.fromarray(pixels[0] if c == 1 else np.moveaxis(pixels, 0, -1), "L" if c == 1 else "RGB")
    scale = max(1, -(-MIN_SIDE // min(h, w)))
    if scale > 1:
        image = image.resize((w * scale, h * scale), Image.Resampling.NEAREST)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def rendered(inputs: common_pb2.RawInputs) -> list[dict]:
    """Each kept input as shown: {"image": data URI} for images, {"text": ...} for texts."""
    if len(inputs.texts):
        return [{"text": t} for t in inputs.texts]
    im = inputs.images
    if not im.count:
        return []
    pixels = np.frombuffer(im.pixels, np.uint8).reshape(im.count, im.channels, im.height, im.width)
    return [{"image": data_uri(png(p))} for p in pixels]


def from_upload(data: bytes, shape: tuple[int, int, int]) -> common_pb2.RawInputs:
    """An uploaded picture (any format Pillow reads) as one image of the encoder's input shape (C, H, W):
    gray or RGB, resized to H x W."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise invalid("image", f"must be at most {MAX_UPLOAD_BYTES >> 20} MiB, got {len(data)} bytes")
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise invalid("image", f"is not an image Pillow can read ({type(e).__name__})") from None
    c, h, w = shape
    image = image.convert("L" if c == 1 else "RGB")
    if image.size != (w, h):  # BOX averages whole blocks: a picture scaled up by png() comes back exactly
        smaller = image.size[0] >= w and image.size[1] >= h
        image = image.resize((w, h), Image.Resampling.BOX if smaller else Image.Resampling.BILINEAR)
    pixels = np.asarray(image, np.uint8)
    pixels = pixels[None] if c == 1 else np.moveaxis(pixels, -1, 0)  # (C, H, W)
    return common_pb2.RawInputs(images=common_pb2.ImageBatch(count=1, channels=c, height=h, width=w,
                                                             pixels=np.ascontiguousarray(pixels).tobytes()))
