"""Near-duplicate thresholds, apart from the hashing code so `gemid --help` can show them without OpenCV.

Measured on gems68 (2,042 photos, distances taken over the 8 rotations/mirrors): no pair from different
species comes within 32 of 256 bits, a 60 % resize + JPEG q70 stays within 10 bits, +10 % brightness + blur
within 28; the same stone re-photographed slightly turned lands at 30-44. Colour: such edits move the 8x8
Lab signature by 9 delta-E at most, while different-species look-alikes within 40 bits differ by 12 or
more. At these defaults gems68 has 47 groups (111 photos), all within one species.
"""

HASH_BITS = 256
DEFAULT_THRESHOLD = 40  # bits of 256: also joins the same stone re-photographed a little turned or moved
DEFAULT_COLOUR_THRESHOLD = 12.0  # mean delta-E (CIE76) between 8x8 Lab thumbnails
