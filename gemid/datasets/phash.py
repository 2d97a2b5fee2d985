"""Perceptual hashes and near-duplicate groups.

A DCT hash (pHash) survives resizing, re-encoding and mild brightness changes, so the same photo saved twice
(or scraped from two shops) lands within a few bits of itself. Pairs within a Hamming threshold are joined
with union-find; a group is then kept whole in one split, and a group that spans species is a label
conflict worth a human look.

Why 256 bits and a colour check rather than the classic 64-bit pHash: product photos of loose stones are a
centred blob on a plain background, so the 8x8 lowest frequencies mostly encode the silhouette. Measured on
gems68, 64-bit pHash at 6 bits joined 24 groups of obviously different stones across classes (a red pear
and a green pear). The 16x16 low-frequency block (256 bits) separates them: no pair from different classes
comes within 32 bits, while a 60 % resize + JPEG q70 stays within 10 bits and a +10 % brightness + blur
within 28. A grey hash cannot see colour, so a candidate pair must also have similar colour (mean CIELAB
difference of 8x8 thumbnails, 9 or less after those edits, 12 or more between different-class look-alikes).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from gemid.datasets.thresholds import DEFAULT_COLOUR_THRESHOLD, DEFAULT_THRESHOLD, HASH_BITS

_PAIRS_PER_BLOCK = 1 << 20  # pairs compared at once: ~32 MiB of XORed words


def phash(bgr_or_grey: np.ndarray) -> int:
    """256-bit DCT pHash: grey, 64x64 area downscale, 2-D DCT, 16x16 lowest frequencies vs their median."""
    img = bgr_or_grey
    if img.ndim == 3:
        img = cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2GRAY)
    small = cv2.resize(img, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:16, :16]
    bits = (low > np.median(low)).ravel()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def colour_signature(bgr: np.ndarray) -> np.ndarray:
    """8x8 CIELAB thumbnail (float32, L in 0..100): what the grey hash cannot see."""
    small = cv2.resize(bgr[..., :3], (8, 8), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_BGR2LAB)


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


def near_pairs(hashes: Sequence[int], threshold: int) -> list[tuple[int, int, int]]:
    """All index pairs (i < j) whose hashes differ by at most `threshold` bits, with that distance.

    All pairs in blocks (O(n^2) popcounts, ~1 s for 10k photos); fine for the data sets a lab labels.
    """
    h = _words(hashes)
    n = len(h)
    out: list[tuple[int, int, int]] = []
    rows = max(16, _PAIRS_PER_BLOCK // max(n, 1))
    for start in range(0, n, rows):
        block = h[start:start + rows]
        dist = np.bitwise_count(block[:, None, :] ^ h[None, :, :]).sum(axis=-1, dtype=np.int32)
        ii, jj = np.nonzero(dist <= threshold)
        for i, j in zip(ii.tolist(), jj.tolist(), strict=True):
            gi = start + i
            if gi < j:
                out.append((gi, j, int(dist[i, j])))
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
) -> list[list[int]]:
    """Groups (lists of indices, each sorted, listed by first index) of two or more near-duplicates.

    A pair joins when its hashes are within `threshold` bits and (given `colours`) its colour signatures
    within `colour_threshold`. `None` hashes (undecodable files) join nothing. `exact` (e.g. sha256 of the
    bytes) also joins files that are byte-identical.
    """
    idx = [i for i, h in enumerate(hashes) if h is not None]
    uf = UnionFind(len(hashes))
    for a, b, _ in near_pairs([hashes[i] for i in idx], threshold):
        i, j = idx[a], idx[b]
        ci, cj = (colours[i], colours[j]) if colours is not None else (None, None)
        if ci is None or cj is None or colour_distance(ci, cj) <= colour_threshold:
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


def max_distance(hashes: Sequence[int | None], group: Sequence[int]) -> int:
    """Largest pairwise Hamming distance inside a group (how loose the chain is)."""
    hs = [hashes[i] for i in group if hashes[i] is not None]
    return max((hamming(a, b) for k, a in enumerate(hs) for b in hs[k + 1:]), default=0)
