"""gemid: preliminary gemstone identification and grading from photos."""

__version__ = "0.1.0"

DISCLAIMER = (
    "Preliminary identification from a photograph only. It is not a certificate: confirm the species "
    "with standard gemmological tests (refractive index, birefringence, specific gravity, optic character, "
    "spectroscope) before any sale, export or certification."
)
