"""Low-level image statistics of one image: luminance, RMS contrast and radial spectral energy.

Luminance is computed from 8-bit pixels scaled to [0, 1]; colour images are reduced with the ITU-R BT.601
weights ``L = 0.299 R + 0.587 G + 0.114 B`` (those of Pillow's ``convert("L")`` and MATLAB's ``rgb2gray``,
which SHINE uses; Willenbockel et al. 2010, Behav Res Methods 42:671). The stimulus check
(:func:`netfloc.stimuli.folder.load_stimulus_set`) measures every image as it decodes it; per-category
tables and equalisation are in :mod:`netfloc.stimuli.imagestats`.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.fft

from netfloc.errors import NetflocError

BT601 = np.array([0.299, 0.587, 0.114])
#: Radial frequency bands in cycles per image, [low, high); the last band runs to the spectrum's corner.
FREQUENCY_BANDS: tuple[tuple[float, float], ...] = ((1.0, 4.0), (4.0, 16.0), (16.0, 64.0), (64.0, np.inf))


def _band_name(low: float, high: float) -> str:
    return f"energy_{low:g}-{high:g}cpi" if np.isfinite(high) else f"energy_{low:g}+cpi"


MEASURES: tuple[str, ...] = (
    "mean_luminance",
    "rms_contrast",
    *(_band_name(low, high) for low, high in FREQUENCY_BANDS),
)


def luminance(image: np.ndarray) -> np.ndarray:
    """Luminance in [0, 1] as float64: integer pixels are divided by their dtype's maximum (255 for uint8),
    float pixels are taken as already in [0, 1]; H×W×3 images are weighted with BT.601."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and image.shape[2] != 3:
        raise NetflocError(f"expected a greyscale or RGB image, got shape {image.shape}")
    if image.ndim not in (2, 3):
        raise NetflocError(f"expected an H×W or H×W×3 image, got shape {image.shape}")
    pixels = image.astype(np.float64)
    if np.issubdtype(image.dtype, np.integer):
        pixels /= np.iinfo(image.dtype).max
    return pixels @ BT601 if pixels.ndim == 3 else pixels


def band_energy(lum: np.ndarray) -> dict[str, float]:
    """Fraction of the non-DC power ``|FFT2(L − mean L)|²`` in each radial band of :data:`FREQUENCY_BANDS`.

    Radial frequency is ``f = sqrt(fx² + fy²)`` with ``fx``, ``fy`` in cycles per image along each axis. The
    fractions sum to 1 (all energy lies at f ≥ 1 cycle/image); a constant image gives zeros. The spectrum of a
    real image is Hermitian (P(−f) = P(f), same radius), so it is computed for fx ≥ 0 only (``rfft2``) and
    the columns that stand for two frequencies count twice.
    """
    spectrum = scipy.fft.rfft2(lum - lum.mean())
    power = (spectrum.real**2 + spectrum.imag**2) * _half_spectrum_weights(lum.shape[1])
    energy = np.bincount(_half_band_labels(lum.shape), weights=power.ravel(), minlength=len(FREQUENCY_BANDS) + 1)
    total = power.sum()
    return {
        _band_name(low, high): float(energy[band] / total) if total > 0 else 0.0
        for band, (low, high) in enumerate(FREQUENCY_BANDS)
    }


@functools.lru_cache(maxsize=8)
def _half_spectrum_weights(width: int) -> np.ndarray:
    """Weight of each ``rfft2`` column: 1 for fx = 0 and, for even widths, the Nyquist column; 2 for the
    others, which also stand for their mirror frequency −fx."""
    weights = np.full(width // 2 + 1, 2.0)
    weights[0] = 1.0
    if width % 2 == 0:
        weights[-1] = 1.0
    return weights


@functools.lru_cache(maxsize=8)
def _half_band_labels(shape: tuple[int, int]) -> np.ndarray:
    """Each ``rfft2`` frequency's band index in :data:`FREQUENCY_BANDS` (``len(FREQUENCY_BANDS)`` for none: the
    DC), flattened; read-only, since it is cached."""
    height, width = shape
    fy = np.fft.fftfreq(height)[:, np.newaxis] * height
    radius = np.hypot(fy, np.fft.rfftfreq(width)[np.newaxis, :] * width)
    labels = np.full(radius.shape, len(FREQUENCY_BANDS))
    for band, (low, high) in enumerate(FREQUENCY_BANDS):
        labels[(radius >= low) & (radius < high)] = band
    labels = labels.ravel()
    labels.flags.writeable = False
    return labels


def image_stats(image: np.ndarray) -> dict[str, float]:
    """Mean luminance ``mean(L)``, RMS contrast ``sqrt(mean((L − mean L)²))`` (population std of L in [0, 1];
    Peli 1990, JOSA A 7:2032) and the radial band energy fractions of :func:`band_energy`."""
    lum = luminance(image)
    return {"mean_luminance": float(lum.mean()), "rms_contrast": float(lum.std()), **band_energy(lum)}
