"""Beat extraction, two ways, from one lead in mV.

``kachuee2018``: Kachuee, Fazeli and Sarrafzadeh, "ECG heartbeat classification: a deep
transferable representation", IEEE ICHI 2018, section III-A:

1. the lead is resampled to 125 Hz and split into 10-s windows;
2. each window is normalised to [0, 1] (min-max);
3. R candidates are the local maxima (zero crossings of the first difference) whose normalised
   value exceeds 0.9;
4. the nominal heartbeat period T is the median of the candidates' RR intervals in the window;
5. each beat is the segment from its R candidate to 1.2 T later, zero-padded (or cut) to 187
   samples, so every beat starts at its R peak.

MIT-BIH beats take the AAMI label of the nearest annotated beat within ``match_tolerance_s``
(candidates near no annotated AAMI beat are dropped; one candidate per annotation). Only a part
of the annotated beats pass the 0.9 threshold (beats in a window with a taller artefact or a
taller ectopic beat are lost: on the kit's 9 records 45-75 % of beats, 7 % of record 208's V
beats). ``r_source="annotations"`` replaces step 3 by the annotated beats (every beat kept,
as in the widely used 109,446-beat release of their data); on 12-lead records the R peaks
come from ``qrs.detect`` (``r_peaks=`` argument).

``hu_resnet_tcn``: the preprocessing of Hu et al.'s ResNet-TCN (MIT-BIH, 360 Hz): the lead is
denoised with a db6 wavelet decomposition (approximation below ``baseline_hz`` and details above
``noise_hz`` zeroed, the other details soft-thresholded with Donoho's universal threshold),
and a window of 90 samples each side of every R peak (0.25 s, 180 samples) is cut. R peaks are
the annotation positions on MIT-BIH, ``qrs.detect`` positions on 12-lead records.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from team_code.beats.mitdb import AAMI_CLASSES, MitdbRecord
from team_code.dsp.resample import resample


@dataclass(frozen=True)
class Kachuee2018Config:
    """Parameters of Kachuee et al.'s (2018) beat extraction."""

    fs_hz: float = 125.0  # the lead is resampled to this rate
    window_s: float = 10.0  # normalisation windows (non-overlapping)
    min_window_s: float = 2.0  # a trailing window shorter than this is dropped
    threshold: float = 0.9  # R candidates: local maxima above this normalised value
    period_factor: float = 1.2  # each beat spans this many nominal periods T from its R
    n_samples: int = 187  # beats are zero-padded (or cut) to this length
    default_period_s: float = 1.0  # T when a window has fewer than two R peaks
    match_tolerance_s: float = 0.15  # an R candidate takes the label of an annotation this near
    r_source: str = "local_maxima"  # MIT-BIH R peaks: "local_maxima" (paper) or "annotations"


@dataclass(frozen=True)
class HuConfig:
    """Parameters of the wavelet-denoised R-centred windows (Hu et al., ResNet-TCN)."""

    fs_hz: float = 360.0  # the lead is resampled to this rate (MIT-BIH's own)
    half_width_s: float = 0.25  # window half-width: 90 samples at 360 Hz
    wavelet: str = "db6"  # PyWavelets wavelet name
    baseline_hz: float = 0.5  # approximation band (below about this) is zeroed: baseline wander
    noise_hz: float = 45.0  # detail bands lying wholly above this are zeroed: EMG, noise


METHODS: tuple[str, ...] = ("kachuee2018", "hu_resnet_tcn")


def config_for(method: str):
    """The default config of an extraction method."""
    if method == "kachuee2018":
        return Kachuee2018Config()
    if method == "hu_resnet_tcn":
        return HuConfig()
    raise ValueError(f"unknown beat extraction {method!r}; known: {', '.join(METHODS)}")


def beat_length(method: str, config=None) -> int:
    """Number of samples of one beat of ``method``."""
    config = config_for(method) if config is None else config
    if method == "kachuee2018":
        return int(config.n_samples)
    return 2 * int(round(config.half_width_s * config.fs_hz))


@dataclass(frozen=True)
class BeatSet:
    """Beats of one method with their labels and provenance, one row per beat."""

    x: np.ndarray  # float32 (n_beats, beat_length)
    y: np.ndarray  # int64 (n_beats,), class index (AAMI_CLASSES order on MIT-BIH; -1 unknown)
    record: np.ndarray  # str (n_beats,), record of each beat
    group: np.ndarray  # str (n_beats,), patient/record group: never split across train/test
    sample: np.ndarray  # int64 (n_beats,), R sample in the record's original sampling
    method: str  # extraction method name

    def __len__(self) -> int:
        return int(self.y.size)

    def subset(self, index) -> BeatSet:
        """The beats selected by a boolean mask or integer index."""
        return dataclasses.replace(
            self,
            x=self.x[index],
            y=self.y[index],
            record=self.record[index],
            group=self.group[index],
            sample=self.sample[index],
        )

    def counts(self, classes: Sequence[str] = AAMI_CLASSES) -> dict[str, int]:
        """Beats per class name."""
        return {c: int((self.y == i).sum()) for i, c in enumerate(classes)}

    @staticmethod
    def concat(sets: Sequence[BeatSet]) -> BeatSet:
        """One set from several of the same method."""
        if not sets:
            raise ValueError("no beat sets to concatenate")
        methods = {s.method for s in sets}
        if len(methods) != 1:
            raise ValueError(f"cannot concatenate beats of different methods {sorted(methods)}")
        return BeatSet(
            x=np.concatenate([s.x for s in sets]),
            y=np.concatenate([s.y for s in sets]),
            record=np.concatenate([s.record for s in sets]),
            group=np.concatenate([s.group for s in sets]),
            sample=np.concatenate([s.sample for s in sets]),
            method=sets[0].method,
        )


# --------------------------------------------------------------------------------------------
# Kachuee et al. (2018)


def _local_maxima(x: np.ndarray) -> np.ndarray:
    """Indices where the first difference crosses zero from positive to non-positive."""
    d = np.diff(x)
    return np.flatnonzero((d[:-1] > 0) & (d[1:] <= 0)) + 1


def kachuee2018_segments(
    signal_mv: np.ndarray,
    fs: float,
    r_peaks: np.ndarray | None = None,
    config: Kachuee2018Config = Kachuee2018Config(),
) -> tuple[np.ndarray, np.ndarray]:
    """Kachuee et al.'s beats of one lead.

    Args:
        signal_mv: one lead, shape (n_samples,).
        fs: its sampling frequency in Hz.
        r_peaks: R-peak sample indices at ``fs``; None finds candidates as the paper does
            (local maxima above ``config.threshold`` of each normalised window).
        config: extraction parameters.

    Returns:
        ``beats`` float32 (n, config.n_samples) in [0, 1] and ``r_samples`` int64 (n,), each
        beat's R position in samples at ``fs``.
    """
    signal_mv = np.asarray(signal_mv, dtype=np.float64)
    if signal_mv.ndim != 1:
        raise ValueError(f"kachuee2018 takes one lead (n_samples,), got shape {signal_mv.shape}")
    x = resample(signal_mv, fs, config.fs_hz)
    n_win = int(round(config.window_s * config.fs_hz))
    n_min = int(round(config.min_window_s * config.fs_hz))
    scale = config.fs_hz / fs
    given = None if r_peaks is None else np.round(np.asarray(r_peaks) * scale).astype(np.int64)
    beats, positions = [], []
    for start in range(0, x.size, n_win):
        window = x[start : start + n_win]
        if window.size < n_min:
            break
        span = window.max() - window.min()
        if span <= 0:
            continue
        window = (window - window.min()) / span
        if given is None:
            peaks = _local_maxima(window)
            peaks = peaks[window[peaks] > config.threshold]
        else:
            peaks = given[(given >= start) & (given < start + window.size)] - start
        if peaks.size == 0:
            continue
        period = (
            float(np.median(np.diff(peaks)))
            if peaks.size >= 2
            else config.default_period_s * config.fs_hz
        )
        length = min(config.n_samples, int(round(config.period_factor * period)))
        for p in peaks:
            beat = np.zeros(config.n_samples, dtype=np.float32)
            piece = window[p : p + length]
            beat[: piece.size] = piece
            beats.append(beat)
            positions.append(int(round((start + p) / scale)))
    if not beats:
        return np.zeros((0, config.n_samples), np.float32), np.zeros(0, np.int64)
    return np.stack(beats), np.asarray(positions, dtype=np.int64)


# --------------------------------------------------------------------------------------------
# Hu et al. (ResNet-TCN): db6 wavelet denoising and R-centred windows


def denoise_wavelet(signal_mv: np.ndarray, fs: float, config: HuConfig = HuConfig()) -> np.ndarray:
    """Wavelet denoising of one lead: baseline and high-frequency bands zeroed, rest thresholded.

    The decomposition level is the smallest whose approximation band (0 .. fs / 2^(L+1)) lies
    below ``config.baseline_hz`` (9 at 360 Hz), capped by the signal length; detail level j
    covers fs / 2^(j+1) .. fs / 2^j and is zeroed when its lower edge is at or above
    ``config.noise_hz`` (levels 1 and 2 at 360 Hz). Remaining details are soft-thresholded at
    sigma * sqrt(2 ln n), sigma = median(|cD1|) / 0.6745 (Donoho and Johnstone).
    """
    import pywt

    signal_mv = np.asarray(signal_mv, dtype=np.float64)
    wavelet = pywt.Wavelet(config.wavelet)
    max_level = pywt.dwt_max_level(signal_mv.size, wavelet.dec_len)
    level = int(np.ceil(np.log2(fs / config.baseline_hz) - 1))
    level = max(1, min(level, max_level))
    coeffs = pywt.wavedec(signal_mv, wavelet, level=level)
    # coeffs = [cA_L, cD_L, ..., cD_1]
    detail1 = coeffs[-1]
    sigma = np.median(np.abs(detail1)) / 0.6745 if detail1.size else 0.0
    threshold = sigma * np.sqrt(2.0 * np.log(max(signal_mv.size, 2)))
    if fs / 2 ** (level + 1) <= config.baseline_hz:
        coeffs[0] = np.zeros_like(coeffs[0])
    for j in range(1, level + 1):
        index = len(coeffs) - j
        if fs / 2 ** (j + 1) >= config.noise_hz:
            coeffs[index] = np.zeros_like(coeffs[index])
        else:
            c = coeffs[index]
            coeffs[index] = np.sign(c) * np.maximum(np.abs(c) - threshold, 0.0)  # soft
    return pywt.waverec(coeffs, wavelet)[: signal_mv.size]


def hu_segments(
    signal_mv: np.ndarray, fs: float, r_peaks: np.ndarray, config: HuConfig = HuConfig()
) -> tuple[np.ndarray, np.ndarray]:
    """Denoised R-centred windows of one lead.

    Returns ``beats`` float32 (n, 2 * half-width samples) in mV and the indices (into
    ``r_peaks``) of the peaks whose whole window lies inside the signal.
    """
    signal_mv = np.asarray(signal_mv, dtype=np.float64)
    if signal_mv.ndim != 1:
        raise ValueError(f"hu_resnet_tcn takes one lead (n_samples,), got shape {signal_mv.shape}")
    x = denoise_wavelet(resample(signal_mv, fs, config.fs_hz), config.fs_hz, config)
    half = int(round(config.half_width_s * config.fs_hz))
    r = np.round(np.asarray(r_peaks, dtype=np.float64) * config.fs_hz / fs).astype(np.int64)
    kept = np.flatnonzero((r - half >= 0) & (r + half <= x.size))
    if kept.size == 0:
        return np.zeros((0, 2 * half), np.float32), kept
    index = r[kept, None] + np.arange(-half, half)[None, :]
    return x[index].astype(np.float32), kept


# --------------------------------------------------------------------------------------------
# MIT-BIH records


def _match(candidates: np.ndarray, annotated: np.ndarray, tolerance: int) -> np.ndarray:
    """For each candidate, the index of the nearest annotation within tolerance, else -1;
    an annotation keeps only its nearest candidate."""
    match = np.full(candidates.size, -1, dtype=np.int64)
    if candidates.size == 0 or annotated.size == 0:
        return match
    pos = np.searchsorted(annotated, candidates)
    left = np.clip(pos - 1, 0, annotated.size - 1)
    right = np.clip(pos, 0, annotated.size - 1)
    d_left = np.abs(candidates - annotated[left])
    d_right = np.abs(annotated[right] - candidates)
    nearest = np.where(d_left <= d_right, left, right)
    distance = np.minimum(d_left, d_right)
    ok = distance <= tolerance
    best: dict[int, int] = {}
    for i in np.flatnonzero(ok):
        a = int(nearest[i])
        if a not in best or distance[i] < distance[best[a]]:
            best[a] = int(i)
    for a, i in best.items():
        match[i] = a
    return match


def extract(record: MitdbRecord, method: str = "kachuee2018", config=None) -> BeatSet:
    """Labelled beats of one MIT-BIH record (group = record name, one patient per record)."""
    config = config_for(method) if config is None else config
    if method == "kachuee2018" and config.r_source == "annotations":
        beats, positions = kachuee2018_segments(
            record.signal_mv, record.fs, record.beat_samples, config
        )
        # positions went through the 125 Hz grid: match back within one of its samples
        match = _match(positions, record.beat_samples, int(np.ceil(record.fs / config.fs_hz)))
        keep = match >= 0
        beats, positions, labels = beats[keep], positions[keep], record.beat_labels[match[keep]]
    elif method == "kachuee2018":
        if config.r_source != "local_maxima":
            raise ValueError(
                f"kachuee2018: r_source must be 'local_maxima' or 'annotations', "
                f"not {config.r_source!r}"
            )
        beats, positions = kachuee2018_segments(record.signal_mv, record.fs, None, config)
        tolerance = int(round(config.match_tolerance_s * record.fs))
        match = _match(positions, record.beat_samples, tolerance)
        keep = match >= 0
        beats, positions, labels = beats[keep], positions[keep], record.beat_labels[match[keep]]
    elif method == "hu_resnet_tcn":
        beats, kept = hu_segments(record.signal_mv, record.fs, record.beat_samples, config)
        positions, labels = record.beat_samples[kept], record.beat_labels[kept]
    else:
        raise ValueError(f"unknown beat extraction {method!r}; known: {', '.join(METHODS)}")
    n = labels.size
    return BeatSet(
        x=beats,
        y=labels.astype(np.int64),
        record=np.full(n, record.name),
        group=np.full(n, record.name),
        sample=positions.astype(np.int64),
        method=method,
    )


def extract_database(
    records: Sequence[MitdbRecord], method: str = "kachuee2018", config=None
) -> BeatSet:
    """Labelled beats of several MIT-BIH records."""
    return BeatSet.concat([extract(r, method, config) for r in records])


def beats_of_lead(
    signal_mv: np.ndarray, fs: float, r_peaks: np.ndarray, method: str, config=None
) -> tuple[np.ndarray, np.ndarray]:
    """Unlabelled beats of one lead at given R peaks (12-lead records): beats and R samples."""
    config = config_for(method) if config is None else config
    r_peaks = np.asarray(r_peaks, dtype=np.int64)
    if method == "kachuee2018":
        return kachuee2018_segments(signal_mv, fs, r_peaks, config)
    if method == "hu_resnet_tcn":
        beats, kept = hu_segments(signal_mv, fs, r_peaks, config)
        return beats, r_peaks[kept]
    raise ValueError(f"unknown beat extraction {method!r}; known: {', '.join(METHODS)}")


def detect_r_peaks(signal_mv: np.ndarray, fs: float) -> np.ndarray:
    """R peaks of a record, all leads analysed together (``qrs.detect``, Christov 2004)."""
    from team_code.dsp import qrs

    signal_mv = np.atleast_2d(np.asarray(signal_mv, dtype=np.float64))
    signal_mv = np.nan_to_num(signal_mv, nan=0.0, posinf=0.0, neginf=0.0)
    if signal_mv.shape[-1] < int(fs):
        return np.zeros(0, dtype=np.int64)
    return qrs.detect(signal_mv, fs, method="christov2004")


def record_beats(
    signal_mv: np.ndarray,
    fs: float,
    leads: Sequence[str],
    method: str,
    config=None,
    lead: str = "II",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Beats of one lead of a multi-lead record, R peaks detected on all its leads.

    Returns ``beats`` (n, beat_length), their R samples at ``fs``, and every detected R peak
    (including those whose beat could not be cut), from which RR intervals are read.
    """
    signal_mv = np.atleast_2d(np.asarray(signal_mv))
    names = [name.lower() for name in leads]
    if lead.lower() not in names:
        raise ValueError(f"no lead {lead!r} among {', '.join(leads)}")
    r_peaks = detect_r_peaks(signal_mv, fs)
    one = np.nan_to_num(np.asarray(signal_mv[names.index(lead.lower())], dtype=np.float64))
    if r_peaks.size == 0:
        return np.zeros((0, beat_length(method, config)), np.float32), r_peaks, r_peaks
    beats, r_used = beats_of_lead(one, fs, r_peaks, method, config)
    return beats, r_used, r_peaks
