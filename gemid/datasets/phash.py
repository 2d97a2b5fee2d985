"""Perceptual hashes and near-duplicate groups.

A DCT hash (pHash) survives resizing, re-encoding and mild brightness changes, so the same photo saved twice
(or scraped from two shops) lands within a few bits of itself. Pairs within a Hamming threshold are joined
with union-find; a group is then kept whole in one split, and a group that spans species is a label
conflict worth a human look.

Why 256 bits and a colour check rather than the classic 64-bit pHash: product photos of loose stones are a
centred blob on a plain background, so the 8x8 lowest frequencies mostly encode the silhouette, and on
gems68 the 64-bit hash joined obviously different stones of different species (a red pear and a green
pear). The 16x16 low-frequency block (256 bits) keeps different stones apart while resized, re-encoded,
brightened or blurred copies stay close. A grey hash cannot see colour, so a candidate pair must also have
similar colour (mean CIELAB difference of 8x8 thumbnails). Distances are taken over the 8 rotations/mirrors
of one image (a copy turned by EXIF or an editor is the same photo), the colour signature turned to match.
The thresholds and what they were measured on: `gemid.datasets.thresholds`.

Hand-written rather than imagehash: the hash is a dozen lines of OpenCV where imagehash would add a
dependency, one 64x64 grey downscale serves all 8 rotations/mirrors, and the grouping (vectorised
popcounts, union-find, the colour guard) would be ours either way.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from gemid.datasets.thresholds import DEFAULT_COLOUR_THRESHOLD, DEFAULT_THRESHOLD, HASH_BITS

_PAIRS_PER_BLOCK = 1 << 20  # pairs compared at once: ~32 MiB of XORed words


def _grey64(img: np.ndarray) -> np.ndarray:
    if img.ndim == 3:
        img = cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2GRAY)
    return cv2.resize(img, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32)


def _hash(small: np.ndarray) -> int:
    low = cv2.dct(np.ascontiguousarray(small))[:16, :16]
    bits = (low > np.median(low)).ravel()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def dihedral(a: np.ndarray, v: int) -> np.ndarray:
    """One of the 8 rotations/mirrors of an image-like array (v = 0 is the array itself)."""
    r = np.rot90(a, v // 2)
    return r[:, ::-1] if v % 2 else r


def phash(rgb_or_grey: np.ndarray) -> int:
    """256-bit DCT pHash: grey, 64x64 area downscale, 2-D DCT, 16x16 lowest frequencies vs their median."""
    return _hash(_grey64(rgb_or_grey))


def phash_variants(rgb_or_grey: np.ndarray) -> tuple[int, ...]:
    """The pHash of the image turned by 0/90/180/270 degrees, each also mirrored: 8 hashes, [0] = `phash`.

    Many gems68 JPEGs carry an EXIF orientation; a copy saved without it (or turned in an editor) is the
    same photo, and only a rotation-aware comparison sees that.
    """
    small = _grey64(rgb_or_grey)
    return tuple(_hash(dihedral(small, v)) for v in range(8))


def colour_signature(rgb: np.ndarray) -> np.ndarray:
    """8x8 CIELAB thumbnail (float32, L in 0..100) of 8-bit sRGB pixels: what the grey hash cannot see."""
    small = cv2.resize(np.ascontiguousarray(rgb[..., :3]), (8, 8), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def colour_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean CIE76 delta-E between two colour signatures."""
    return float(np.linalg.norm(a - b, axis=-1).mean())


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def _words(hashes: Sequence[int]) -> np.ndarray:
    """(n, 4) uint64 words of 256-bit hashes, for vectorised popcounts."""
    mask = (1 << 64) - 1
    return np.array([[(h >> (64 * k)) & mask for k in range(HASH_BITS // 64)] for h in hashes],
                    dtype=np.uint64).reshape(len(hashes), HASH_BITS // 64)


def near_pairs(hashes: Sequence[int], threshold: int,
               variants: Sequence[Sequence[int]] | None = None) -> list[tuple[int, int, int, int]]:
    """Index pairs (i < j) within `threshold` bits, as (i, j, distance, v).

    With `variants` (each image's 8 `phash_variants`), the distance is the smallest between i as decoded
    and j turned/mirrored by v; otherwise v is 0. All pairs in blocks (O(n^2) vectorised popcounts): fine
    for the data sets a lab labels.
    """
    a = _words(hashes)
    n = len(a)
    b = (np.stack([_words(v) for v in variants]) if variants is not None else a[:, None, :])  # (n, V, 4)
    out: list[tuple[int, int, int, int]] = []
    rows = max(16, _PAIRS_PER_BLOCK // max(n * b.shape[1], 1))
    for start in range(0, n, rows):
        block = a[start:start + rows]
        dist = np.bitwise_count(block[:, None, None, :] ^ b[None, :, :, :]).sum(axis=-1, dtype=np.int32)
        best_v = dist.argmin(axis=-1)
        best = np.take_along_axis(dist, best_v[..., None], axis=-1)[..., 0]
        ii, jj = np.nonzero(best <= threshold)
        for i, j in zip(ii.tolist(), jj.tolist(), strict=True):
            gi = start + i
            if gi < j:
                out.append((gi, j, int(best[i, j]), int(best_v[i, j])))
    return out


class UnionFind:
    """Disjoint sets over 0..n-1 (path halving, union by size)."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))
        self.size = [1] * n

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]


def group_near_duplicates(
    hashes: Sequence[int | None],
    threshold: int = DEFAULT_THRESHOLD,
    *,
    colours: Sequence[np.ndarray | None] | None = None,
    colour_threshold: float = DEFAULT_COLOUR_THRESHOLD,
    exact: Sequence[str] | None = None,
    variants: Sequence[Sequence[int] | None] | None = None,
) -> list[list[int]]:
    """Groups (lists of indices, each sorted, listed by first index) of two or more near-duplicates.

    A pair joins when its hashes are within `threshold` bits (the closest of j's rotations/mirrors when
    `variants` are given) and, given `colours`, its colour signatures (turned the same way) within
    `colour_threshold`. `None` hashes (undecodable files) join nothing. `exact` (e.g. sha256 of the bytes)
    also joins files that are byte-identical.
    """
    idx = [i for i, h in enumerate(hashes) if h is not None]
    uf = UnionFind(len(hashes))
    var = [variants[i] for i in idx] if variants is not None else None
    for a, b, _, v in near_pairs([hashes[i] for i in idx], threshold, var):
        i, j = idx[a], idx[b]
        ci, cj = (colours[i], colours[j]) if colours is not None else (None, None)
        if ci is None or cj is None or colour_distance(ci, dihedral(cj, v)) <= colour_threshold:
            uf.union(i, j)
    if exact is not None:
        first: dict[str, int] = {}
        for i, key in enumerate(exact):
            if key:
                uf.union(first.setdefault(key, i), i)
    members: dict[int, list[int]] = {}
    for i in range(len(hashes)):
        members.setdefault(uf.find(i), []).append(i)
    return sorted((m for m in members.values() if len(m) > 1), key=lambda m: m[0])


def max_distance(hashes: Sequence[int | None], group: Sequence[int],
                 variants: Sequence[Sequence[int] | None] | None = None) -> int:
    """Largest pairwise Hamming distance inside a group (how loose the chain is), rotation-aware when
    `variants` are given."""
    members = [i for i in group if hashes[i] is not None]

    def d(i: int, j: int) -> int:
        vj = variants[j] if variants is not None else None
        return min(hamming(hashes[i], h) for h in vj) if vj else hamming(hashes[i], hashes[j])

    return max((d(i, j) for k, i in enumerate(members) for j in members[k + 1:]), default=0)
