"""Near-duplicate thresholds, apart from the hashing code so `gemid --help` can show them without OpenCV.

Chosen on gems68: the bit threshold joins copies that were resized, re-encoded, brightened or blurred, and the
same stone re-photographed a little turned, while staying below the distance between photos of different
species; the colour threshold then keeps apart the look-alikes of different species that the grey hash
alone would join. The README's retraining section gives the figures and the commands that measure them.
"""

HASH_BITS = 256
DEFAULT_THRESHOLD = 40  # bits of 256: also joins the same stone re-photographed a little turned or moved
DEFAULT_COLOUR_THRESHOLD = 12.0  # mean delta-E (CIE76) between 8x8 Lab thumbnails
