"""What the learned delineator's network reads and says, without torch: its sampling rate
:data:`FS`, its :data:`CLASSES` (and the :data:`IGNORE` label of unmarked samples), and
:func:`prepare`, which turns ECG leads into its input.

The network reads ONE lead at :data:`FS` Hz, band-limited (0.5 Hz Butterworth high-pass,
40 Hz low-pass: the kit's ``filters.remove_baseline`` and ``filters.remove_emg``) and divided
by a robust amplitude (the 99th percentile of its absolute deviation from the median, at least
:data:`MIN_SCALE_MV`), and labels every sample with one of :data:`CLASSES`. A two-channel
input (``NetConfig.input_channels``) adds, by ``NetConfig.second_channel``, the same lead
without the low-pass (``"wide"``) or the record's context (``"context"``: the root mean square
over the record's leads of their normalised signals, the same on every lead).
"""

from __future__ import annotations

import numpy as np

from team_code.dsp import filters
from team_code.dsp.resample import resample

FS = 250.0  #: the network's sampling rate, Hz
CLASSES: tuple[str, ...] = ("none", "P", "QRS", "T")
NONE, P, QRS, T = range(4)
IGNORE = -1  #: label of samples outside a lead's annotated span (no loss there)
MIN_SCALE_MV = 0.01  #: a lead's robust amplitude is at least this (flat leads stay near 0)


#: What a second input channel holds (:func:`prepare`)
SECOND_CHANNELS: tuple[str, ...] = ("wide", "context")


def check_channels(
    input_channels: int, lowpass_hz: float, where: str, second: str = "wide"
) -> None:
    """Refuse an input other than one channel, or two whose second is the lead without the
    low-pass (``second="wide"``) where there is no low-pass, or an unknown ``second``."""
    if second not in SECOND_CHANNELS:
        raise ValueError(f"{where}: second channel {second!r}; known: {', '.join(SECOND_CHANNELS)}")
    if second != "wide" and input_channels != 2:
        raise ValueError(
            f"{where}: second channel {second!r} needs input_channels 2; got {input_channels}"
        )
    wide = input_channels == 2 and second == "wide"
    if input_channels not in (1, 2) or (wide and not lowpass_hz > 0):
        raise ValueError(
            f"{where}: input_channels {input_channels} with lowpass_hz {lowpass_hz} "
            "(1 channel, or 2: the lead without the low-pass needs a low-pass)"
        )


def prepare(
    x, fs: float, lowpass_hz: float = 40.0, input_channels: int = 1, second: str = "wide"
) -> tuple[np.ndarray, np.ndarray]:
    """``(normalised, filtered_mv)``: each lead at :data:`FS` Hz, band-limited, and divided by
    its robust amplitude (``normalised``, float32, the network's input) or in mV
    (``filtered_mv``, for amplitudes). ``x``: (n_leads, n) or (n,) in mV at ``fs`` Hz.
    Band: the 0.5 Hz high-pass, and the low-pass at ``lowpass_hz`` (none where it is 0: the
    resampling's anti-aliasing alone).

    ``normalised`` is (n_leads, n) for one input channel; for two (``input_channels=2``,
    ``lowpass_hz > 0``) it is (n_leads, 2, n): channel 0 the one-channel input, channel 1
    the same lead with the high-pass only (pacing spikes and the QRS's sharp edges kept),
    centred on its own median and divided by channel 0's robust amplitude (``second="wide"``),
    or the root mean square over all the leads of ``x`` of their channel 0 (``"context"``:
    where the record's waves are, whichever lead is read)."""
    check_channels(input_channels, lowpass_hz, "prepare", second)
    y, _ = filters.fill_nonfinite(x)  # a gap bridged, not two steps to 0 that look like beats
    wide = filters.remove_baseline(resample(y, float(fs), FS), FS)
    y = filters.remove_emg(wide, FS, lowpass_hz) if lowpass_hz > 0 else wide
    centred = y - np.median(y, axis=-1, keepdims=True)
    scale = np.maximum(np.percentile(np.abs(centred), 99, axis=-1, keepdims=True), MIN_SCALE_MV)
    z = (centred / scale).astype(np.float32)
    if input_channels == 2 and second == "context":
        rms = np.sqrt(np.mean(np.square(z, dtype=np.float64), axis=0)).astype(np.float32)
        z = np.stack([z, np.broadcast_to(rms, z.shape)], axis=1)
    elif input_channels == 2:
        z_wide = (wide - np.median(wide, axis=-1, keepdims=True)) / scale
        z = np.stack([z, z_wide.astype(np.float32)], axis=1)
    return z, y


def _with_channels(normalised: np.ndarray, channels: int) -> np.ndarray:
    """``normalised`` as (n_leads, channels, n): a (n_leads, n) or (n,) array gets the channel
    axis where ``channels`` is 1; an array of the wrong shape is an error that names it."""
    z = np.asarray(normalised)
    if z.ndim <= 2 and channels == 1:
        z = np.atleast_2d(z)[:, None, :]
    if z.ndim != 3 or z.shape[1] != channels:
        raise ValueError(
            f"the network reads {channels} input channel(s): expected (n_leads, n)"
            f"{' or (n_leads, 1, n)' if channels == 1 else f' as (n_leads, {channels}, n)'}"
            f"; got {z.shape}"
        )
    return z
