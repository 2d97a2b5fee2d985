"""Near-duplicate thresholds, apart from the hashing code so `gemid --help` can show them without OpenCV.

Measured on gems68 (2,042 photos): no pair from different species comes within 32 of 256 bits, a 60 %
resize + JPEG q70 stays within 10 bits, +10 % brightness + blur within 28; the same stone re-photographed
slightly turned lands at 30-44. Colour: such edits move the 8x8 Lab signature by 9 delta-E at most, while
different-species look-alikes within the hash threshold differ by 12 or more.
"""

HASH_BITS = 256
DEFAULT_THRESHOLD = 40  # bits of 256: also joins the same stone re-photographed a little turned or moved
DEFAULT_COLOUR_THRESHOLD = 12.0  # mean delta-E (CIE76) between 8x8 Lab thumbnails
