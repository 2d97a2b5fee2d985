"""Phone-style photos of a rendered stone: a large frame, the stone in its middle third, sensor noise.

Desks send 9-12 MP phone photos, not 512-px product shots; the benchmarks and the tests of the working image
(`gemid.vision.decode`) need such photos without shipping any. The stone is rendered (`render`) at about half
the frame's height and laid, with a feathered edge, on a canvas of its own background colour with a slight
light fall-off towards the corners (a phone's vignetting); then every pixel gets sensor noise that grows
with the signal (shot noise) over a floor (read noise), and the frame is encoded as a camera would: JPEG at
quality 90 or HEIC (pillow-heif), the iPhone's default.
"""

from __future__ import annotations

import io

import numpy as np

from gemid.datasets.synth.render import render
from gemid.datasets.synth.spec import StoneSpec

PHONE_12MP = (4032, 3024)  # an iPhone's 12 MP frame, landscape


def phone_frame(spec: StoneSpec, *, size: tuple[int, int] = PHONE_12MP, seed: int = 0, noise: float = 2.5) -> np.ndarray:
    """RGB uint8 (H, W, 3): the stone of `spec` in the middle third of a W x H frame with sensor noise."""
    w, h = size
    side = max(64, min(4096, round(0.45 * min(w, h))))
    rgb, _mask, _truth = render(spec, size=side, seed=seed)
    ring = np.concatenate([rgb[:4].reshape(-1, 3), rgb[-4:].reshape(-1, 3), rgb[:, :4].reshape(-1, 3),
                           rgb[:, -4:].reshape(-1, 3)])
    bg = np.median(ring, axis=0).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    frame = bg[None, None, :] * (1.0 - 0.06 * r2)[..., None]  # vignetting: ~6 % darker in the corners
    y0, x0 = (h - side) // 2, (w - side) // 2
    sy, sx = np.mgrid[0:side, 0:side]
    edge = np.minimum(np.minimum(sy, sx), np.minimum(side - 1 - sy, side - 1 - sx)).astype(np.float32)
    alpha = np.clip(edge / max(8.0, 0.08 * side), 0.0, 1.0)[..., None]
    win = frame[y0:y0 + side, x0:x0 + side]
    frame[y0:y0 + side, x0:x0 + side] = win * (1.0 - alpha) + rgb.astype(np.float32) * alpha
    rng = np.random.default_rng([seed, 31337])
    sigma = np.sqrt(noise ** 2 + 0.02 * frame)  # read noise and shot noise, in 8-bit levels
    frame += rng.standard_normal(frame.shape, dtype=np.float32) * sigma
    return np.clip(frame + 0.5, 0, 255).astype(np.uint8)


HEIC_QUALITY = 60  # a 12 MP frame of `phone_frame` comes out at ~1.6 MB, an iPhone's usual 1.5-2.5 MB
HEIC_TILE = 512  # the grid tile of an iPhone HEIC (4032 x 3024 = 8 x 6 tiles; libheif crops the last row and column)


def encode_photo(rgb: np.ndarray, fmt: str = "jpeg", quality: int | None = None) -> bytes:
    """The frame as a phone stores it: JPEG (quality 90, 4:2:0, as cameras write it; ~1.4 MB at 12 MP) or HEIC
    (quality HEIC_QUALITY). At quality 90 the noisy frame's HEIC is 7.8 MB, and its decode takes 4x longer."""
    from PIL import Image

    buf = io.BytesIO()
    if fmt == "jpeg":
        Image.fromarray(rgb).save(buf, format="JPEG", quality=quality or 90, subsampling=2)
    elif fmt == "heic":
        import pillow_heif

        pillow_heif.register_heif_opener()
        # as an iPhone stores it: a grid of 512-px tiles, each its own HEVC image (a 12 MP photo is 8 x 6 of
        # them), which a decoder may decode in parallel; one 12 MP HEVC image, as before, cannot be
        tile, pillow_heif.options.GRID_TILE_SIZE = pillow_heif.options.GRID_TILE_SIZE, HEIC_TILE
        try:
            # x265 "ultrafast": a 12 MP frame encodes in seconds, not a minute (the decoder does the same work)
            Image.fromarray(rgb).save(buf, format="HEIF", quality=quality or HEIC_QUALITY,
                                      enc_params={"preset": "ultrafast"})
        finally:
            pillow_heif.options.GRID_TILE_SIZE = tile
    else:
        raise ValueError(f"fmt must be 'jpeg' or 'heic', not {fmt!r}")
    return buf.getvalue()


def phone_photo(spec: StoneSpec, *, fmt: str = "jpeg", size: tuple[int, int] = PHONE_12MP, seed: int = 0) -> bytes:
    """`phone_frame` encoded as `fmt` ('jpeg' or 'heic')."""
    return encode_photo(phone_frame(spec, size=size, seed=seed), fmt)
