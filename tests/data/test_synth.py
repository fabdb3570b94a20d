"""Synthetic 12-lead ECGs (team_code.data.synth) and the record writer (team_code.data.writer).

Every class property is measured here from the generated signal by simple, independent
methods (peak picking, thresholded spatial magnitude, net QRS areas, peak-to-peak) and
compared with what the generator planted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import runpy
import sys

import numpy as np
import pytest
from scipy.signal import find_peaks

from team_code.data import synth
from team_code.data.synth import (
    AF,
    COMBINATIONS,
    IAVB,
    LAD,
    LEADS,
    LQRSV,
    NSR,
    PVC,
    RAD,
    SB,
    STACH,
    NoiseSpec,
    RecordSpec,
    generate_dataset,
    random_spec,
    synthesize,
)
from team_code.data.writer import wfdb_checksum, write_record

FS = 500
QUIET = NoiseSpec()
NOISY = NoiseSpec(white_mv=0.01, emg_mv=0.02, baseline_mv=0.1, powerline_mv=0.02, powerline_hz=60)
LIMB = slice(0, 6)
CHEST = slice(6, 12)


def lead(signal, name):
    return signal[LEADS.index(name)]


def spatial_magnitude(signal):
    return np.sqrt((signal.astype(np.float64) ** 2).sum(axis=0))


def extent(magnitude, sample, threshold=2e-3):
    """First and last sample of the above-threshold run that contains ``sample``."""
    lo = sample
    while lo > 0 and magnitude[lo - 1] > threshold:
        lo -= 1
    hi = sample
    while hi < len(magnitude) - 1 and magnitude[hi + 1] > threshold:
        hi += 1
    return lo, hi


def pick_peaks(x, fs):
    """A simple R-peak picker: peaks above half the maximum, at least 250 ms apart."""
    peaks, _ = find_peaks(x, height=0.5 * x.max(), distance=int(0.25 * fs))
    return peaks


def middle_beats(truth, kind="N", margin_s=1.0):
    """Indices (into truth arrays) of beats of one kind well inside the record."""
    fs, n = truth["fs"], truth["n_samples"]
    r = truth["r_peaks"]
    keep = (truth["beat_types"] == kind) & (r > margin_s * fs) & (r < n - margin_s * fs)
    return np.flatnonzero(keep)


# --------------------------------------------------------------------------------------------
# Lead relations and determinism


def test_einthoven_goldberger_hold_with_noise():
    spec = dataclasses.replace(random_spec(np.random.default_rng(5), [AF, RAD]), noise=NOISY)
    signal, _ = synthesize(spec, fs=FS, duration_s=5, seed=3)
    assert signal.dtype == np.float32 and signal.shape == (12, 5 * FS)
    i, ii = lead(signal, "I"), lead(signal, "II")
    tol = 1e-5  # float32 rounding of values of a few mV
    np.testing.assert_allclose(lead(signal, "III"), ii - i, atol=tol, rtol=0)
    np.testing.assert_allclose(lead(signal, "aVR"), -(i + ii) / 2, atol=tol, rtol=0)
    np.testing.assert_allclose(lead(signal, "aVL"), i - ii / 2, atol=tol, rtol=0)
    np.testing.assert_allclose(lead(signal, "aVF"), ii - i / 2, atol=tol, rtol=0)
    # The noise is really there (not a silent spec): lead III is not smooth.
    assert np.std(np.diff(lead(signal, "III"))) > 0.005


def test_same_seed_same_record_different_seed_differs():
    spec = random_spec(np.random.default_rng(0), [NSR, PVC])
    a, truth_a = synthesize(spec, seed=11)
    b, truth_b = synthesize(spec, seed=11)
    c, truth_c = synthesize(spec, seed=12)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(truth_a["r_peaks"], truth_b["r_peaks"])
    assert np.abs(a - c).max() > 0.05
    assert not np.array_equal(truth_a["r_peaks"], truth_c["r_peaks"])
    assert random_spec(np.random.default_rng(4)) == random_spec(np.random.default_rng(4))


# --------------------------------------------------------------------------------------------
# Rhythm: heart rate, AF irregularity, f-waves


@pytest.mark.parametrize(
    ("rate", "label"), [(75.0, NSR), (48.0, SB), (130.0, STACH)], ids=["NSR", "SB", "STach"]
)
def test_heart_rate_planted_and_detected(rate, label):
    spec = RecordSpec(heart_rate_bpm=rate, pr_ms=150, rr_cv=0.03, noise=QUIET)
    signal, truth = synthesize(spec, fs=FS, duration_s=10, seed=1)
    assert truth["labels"] == (label,)
    planted = truth["r_peaks"]
    assert 60.0 / np.median(np.diff(planted) / FS) == pytest.approx(rate, rel=0.04)
    detected = pick_peaks(lead(signal, "II"), FS)
    assert len(detected) == len(planted)
    # The lead-II R peak sits within 10 ms of the planted main-QRS peak.
    assert np.abs(detected - planted).max() <= 0.010 * FS
    measured_bpm = 60.0 / np.mean(np.diff(detected) / FS)
    assert measured_bpm == pytest.approx(rate, rel=0.04)


def test_heart_rate_detected_through_noise():
    spec = RecordSpec(heart_rate_bpm=88.0, noise=NOISY)
    signal, truth = synthesize(spec, fs=FS, duration_s=10, seed=2)
    from scipy.signal import butter, sosfiltfilt

    sos = butter(2, [5, 30], btype="bandpass", fs=FS, output="sos")
    detected = pick_peaks(np.abs(sosfiltfilt(sos, lead(signal, "II"))), FS)
    assert abs(len(detected) - len(truth["r_peaks"])) <= 1
    assert 60.0 / np.median(np.diff(detected) / FS) == pytest.approx(88.0, rel=0.05)


def test_af_is_irregular_without_p_waves_and_sinus_is_regular():
    af_spec = RecordSpec(rhythm="af", heart_rate_bpm=95, rr_cv=0.2, af_amp_mv=0.05, noise=QUIET)
    af_signal, af = synthesize(af_spec, fs=FS, duration_s=10, seed=4)
    sinus_spec = RecordSpec(heart_rate_bpm=95, rr_cv=0.03, noise=QUIET)
    sinus_signal, sinus = synthesize(sinus_spec, fs=FS, duration_s=10, seed=4)
    assert af["labels"] == (AF,) and NSR not in af["labels"]
    assert (af["p_onsets"] == -1).all() and af["pr_ms"] is None
    assert (sinus["p_onsets"] >= 0).sum() >= len(sinus["r_peaks"]) - 1

    def cv(peaks):
        rr = np.diff(peaks)
        return rr.std() / rr.mean()

    assert cv(af["r_peaks"]) > 0.1
    assert cv(sinus["r_peaks"]) < 0.06
    af_detected = pick_peaks(lead(af_signal, "II"), FS)
    sinus_detected = pick_peaks(lead(sinus_signal, "II"), FS)
    assert abs(len(af_detected) - len(af["r_peaks"])) <= 1
    assert cv(af_detected) > 0.1 > 0.06 > cv(sinus_detected)


def test_af_f_waves_are_4_to_8_hz():
    spec = RecordSpec(rhythm="af", heart_rate_bpm=80, af_hz=6.0, af_amp_mv=0.06, noise=QUIET)
    with_f, _ = synthesize(spec, fs=FS, duration_s=10, seed=7)
    without_f, _ = synthesize(dataclasses.replace(spec, af_amp_mv=0.0), fs=FS, seed=7)
    f_wave = lead(with_f, "V1").astype(np.float64) - lead(without_f, "V1")
    spectrum = np.abs(np.fft.rfft(f_wave * np.hanning(len(f_wave))))
    freqs = np.fft.rfftfreq(len(f_wave), 1 / FS)
    dominant = freqs[np.argmax(spectrum)]
    assert 4.0 <= dominant <= 8.0
    assert abs(dominant - 6.0) < 1.0
    in_band = spectrum[(freqs >= 3.5) & (freqs <= 8.5)] ** 2
    assert in_band.sum() > 0.8 * (spectrum**2).sum()
    assert 0.02 < np.ptp(f_wave) < 0.5  # f-waves of about 0.1 mV, visible in V1


# --------------------------------------------------------------------------------------------
# Intervals, axis, voltage


@pytest.mark.parametrize(("pr_ms", "rate", "iavb"), [(160.0, 72.0, False), (280.0, 58.0, True)])
def test_pr_and_qrs_measured_from_the_signal(pr_ms, rate, iavb):
    spec = RecordSpec(heart_rate_bpm=rate, pr_ms=pr_ms, qrs_ms=96.0, noise=QUIET)
    signal, truth = synthesize(spec, fs=FS, duration_s=10, seed=5)
    assert (IAVB in truth["labels"]) is iavb
    magnitude = spatial_magnitude(signal)
    prs, qrss = [], []
    for k in middle_beats(truth):
        qrs_on, qrs_off = extent(magnitude, int(truth["r_peaks"][k]))
        # Walk back over the flat PR segment to the end of the P wave, then to its onset.
        j = qrs_on - 1
        while magnitude[j] <= 2e-3:
            j -= 1
        p_on, _ = extent(magnitude, j)
        prs.append((qrs_on - p_on) / FS * 1000)
        qrss.append((qrs_off - qrs_on + 1) / FS * 1000)
        assert abs(p_on - truth["p_onsets"][k]) <= 0.012 * FS
        assert abs(qrs_on - truth["qrs_onsets"][k]) <= 0.012 * FS
    assert len(prs) >= 5
    assert np.median(prs) == pytest.approx(pr_ms, abs=10)
    assert np.median(qrss) == pytest.approx(96.0, abs=12)
    assert bool(np.median(prs) > 200) == iavb


@pytest.mark.parametrize("fs", [250, 1000])
def test_planted_truth_holds_at_other_sampling_rates(fs):
    spec = RecordSpec(heart_rate_bpm=66.0, pr_ms=240.0, qrs_ms=100.0, axis_deg=-50.0, noise=QUIET)
    signal, truth = synthesize(spec, fs=fs, duration_s=6, seed=2)
    assert signal.shape == (12, 6 * fs) and truth["labels"] == (NSR, LAD, IAVB)
    detected = pick_peaks(spatial_magnitude(signal), fs)
    assert np.abs(detected - truth["r_peaks"]).max() <= 0.012 * fs
    magnitude = spatial_magnitude(signal)
    for k in middle_beats(truth):
        lo, hi = extent(magnitude, int(truth["r_peaks"][k]))
        assert (hi - lo + 1) / fs * 1000 == pytest.approx(100.0, abs=12)
        assert (lo - truth["p_onsets"][k]) / fs * 1000 == pytest.approx(240.0, abs=12)
    area_i, area_avf = qrs_areas(signal, truth)
    assert frontal_axis(area_i, area_avf) == pytest.approx(-50.0, abs=2.0)


def frontal_axis(area_i, area_avf):
    """The angle (deg) of the vector whose projections are the net areas in I and aVF
    (aVF's lead vector is sqrt(3)/2 as long as I's)."""
    return np.degrees(np.arctan2(area_avf / (np.sqrt(3.0) / 2.0), area_i))


def qrs_areas(signal, truth, names=("I", "aVF")):
    """Net QRS area (mV*s) of each named lead, median over the sinus beats."""
    rows = [LEADS.index(n) for n in names]
    areas = []
    for k in middle_beats(truth, margin_s=0.5):
        on, off = truth["qrs_onsets"][k], truth["qrs_offsets"][k]
        areas.append(signal[rows, on : off + 1].sum(axis=1) / truth["fs"])
    return np.median(np.array(areas), axis=0)


@pytest.mark.parametrize("axis_deg", [-60.0, -10.0, 45.0, 75.0, 125.0, 170.0])
def test_axis_from_net_qrs_areas(axis_deg):
    spec = RecordSpec(axis_deg=axis_deg, noise=QUIET)
    signal, truth = synthesize(spec, fs=FS, duration_s=6, seed=0)
    area_i, area_avf = qrs_areas(signal, truth)
    measured = frontal_axis(area_i, area_avf)
    assert measured == pytest.approx(axis_deg, abs=2.0)
    assert (LAD in truth["labels"]) == bool(-90 <= measured < -30)
    assert (RAD in truth["labels"]) == bool(90 < measured <= 180)


@pytest.mark.parametrize(
    ("labels", "low", "high"),
    [((NSR, LAD), -90, -30), ((AF, RAD), 90, 180), ((STACH, RAD), 90, 180), ((NSR,), -30, 90)],
)
def test_random_axis_lands_in_class_range(labels, low, high):
    rng = np.random.default_rng(21)
    for seed in range(3):
        spec = dataclasses.replace(random_spec(rng, labels), rhythm="sinus", noise=QUIET)
        if spec.heart_rate_bpm > 100:  # keep the check on the QRS, not the P overlapping T
            spec = dataclasses.replace(spec, pr_ms=min(spec.pr_ms, 160.0))
        signal, truth = synthesize(spec, fs=FS, duration_s=5, seed=seed)
        area_i, area_avf = qrs_areas(signal, truth)
        measured = frontal_axis(area_i, area_avf)
        assert low + 10 < measured < high - 10 or (low == -30 and -30 < measured < 90)


def qrs_p2p(signal, truth):
    """Peak-to-peak QRS amplitude of every lead, median over the sinus beats."""
    values = []
    for k in middle_beats(truth, margin_s=0.5):
        on, off = truth["qrs_onsets"][k], truth["qrs_offsets"][k]
        seg = signal[:, on : off + 1]
        values.append(seg.max(axis=1) - seg.min(axis=1))
    return np.median(np.array(values), axis=0)


@pytest.mark.parametrize("rhythm_label", [NSR, SB, AF])
def test_low_qrs_voltage_criterion(rhythm_label):
    rng = np.random.default_rng(8)
    low_spec = dataclasses.replace(random_spec(rng, [rhythm_label, LQRSV]), noise=QUIET)
    low_signal, low = synthesize(low_spec, fs=FS, duration_s=8, seed=1)
    p2p = qrs_p2p(low_signal, low)
    assert LQRSV in low["labels"]
    assert (p2p[LIMB] < 0.5).all() and (p2p[CHEST] < 1.0).all()
    normal_spec = dataclasses.replace(random_spec(rng, [rhythm_label]), noise=QUIET)
    normal_signal, normal = synthesize(normal_spec, fs=FS, duration_s=8, seed=1)
    p2p_normal = qrs_p2p(normal_signal, normal)
    assert LQRSV not in normal["labels"]
    assert (p2p_normal[LIMB] >= 0.5).any() or (p2p_normal[CHEST] >= 1.0).any()
    assert max(p2p_normal[LIMB].max() / 0.5, p2p_normal[CHEST].max()) > 1.4
    if rhythm_label != AF:  # without f-waves the QRS is exactly the planted template
        np.testing.assert_allclose(p2p, low["qrs_p2p_mv"], atol=1e-4)
        ratio = max(p2p[LIMB].max() / 0.5, p2p[CHEST].max() / 1.0)
        assert ratio == pytest.approx(low_spec.qrs_scale, rel=1e-3)


# --------------------------------------------------------------------------------------------
# PVCs


def test_pvcs_are_premature_wide_discordant_with_compensatory_pause():
    spec = RecordSpec(heart_rate_bpm=70, n_pvc=2, pvc_qrs_ms=160, qrs_ms=90, noise=QUIET)
    signal, truth = synthesize(spec, fs=FS, duration_s=10, seed=3)
    assert truth["labels"] == (NSR, PVC)
    r, types = truth["r_peaks"], truth["beat_types"]
    pvcs = np.flatnonzero(types == "V")
    assert len(pvcs) == 2 and np.array_equal(r[pvcs], truth["pvc_indices"])
    assert (truth["p_onsets"][pvcs] == -1).all()  # no P wave before a PVC
    nn = np.median([r[k + 1] - r[k] for k in range(len(r) - 1) if types[k] == types[k + 1] == "N"])
    magnitude = spatial_magnitude(signal)
    for k in middle_beats(truth, margin_s=0.5):
        lo, hi = extent(magnitude, int(r[k]))
        assert (hi - lo + 1) / FS * 1000 < 110  # narrow sinus QRS
    for k in pvcs:
        assert types[k - 1] == "N" and types[k + 1] == "N"
        lo, hi = extent(magnitude, int(r[k]))
        width_ms = (hi - lo + 1) / FS * 1000
        assert width_ms > 120 and width_ms == pytest.approx(160, abs=15)
        assert (r[k] - r[k - 1]) < 0.8 * nn  # premature
        assert (r[k + 1] - r[k - 1]) == pytest.approx(2 * nn, rel=0.08)  # compensatory pause
        # Discordant T: in the lead with the largest PVC QRS area, the T area has the other sign.
        qrs = signal[:, lo : hi + 1].sum(axis=1)
        t_wave = signal[:, hi + 1 : hi + 1 + int(0.3 * FS)].sum(axis=1)
        dominant = int(np.argmax(np.abs(qrs)))
        assert np.sign(qrs[dominant]) == -np.sign(t_wave[dominant])
        # Bizarre: the PVC's spatial QRS area points away from the sinus QRS area.
        sinus_k = k - 1
        s_on, s_off = truth["qrs_onsets"][sinus_k], truth["qrs_offsets"][sinus_k]
        sinus_area = signal[:, s_on : s_off + 1].sum(axis=1)
        cosine = qrs @ sinus_area / (np.linalg.norm(qrs) * np.linalg.norm(sinus_area))
        assert cosine < 0.5


# --------------------------------------------------------------------------------------------
# Specs and label combinations


def test_random_spec_plants_every_combination_exactly():
    rng = np.random.default_rng(0)
    for combo in COMBINATIONS:
        assert len({NSR, SB, STACH, AF} & set(combo)) == 1
        for _ in range(5):
            spec = random_spec(rng, combo)
            assert set(spec.labels()) == set(combo)
            assert spec.labels()[0] in (NSR, SB, STACH, AF)
    for _ in range(20):
        spec = random_spec(rng)
        assert tuple(sorted(spec.labels())) in {tuple(sorted(c)) for c in COMBINATIONS}


@pytest.mark.parametrize(
    "labels",
    [[LAD], [NSR, SB], [AF, IAVB], [AF, PVC], [NSR, LAD, RAD], [NSR, "12345"]],
    ids=["no-rhythm", "two-rhythms", "af-iavb", "af-pvc", "lad-rad", "unknown"],
)
def test_random_spec_rejects_impossible_label_sets(labels):
    with pytest.raises(ValueError):
        random_spec(np.random.default_rng(0), labels)


def test_record_spec_validates():
    with pytest.raises(ValueError, match="rhythm"):
        RecordSpec(rhythm="flutter")
    with pytest.raises(ValueError, match="pr_ms"):
        RecordSpec(pr_ms=90.0, p_ms=100.0)
    with pytest.raises(ValueError, match="n_pvc"):
        RecordSpec(rhythm="af", n_pvc=1)
    with pytest.raises(ValueError, match="white_mv"):
        NoiseSpec(white_mv=-1.0)


def test_lead_field_obeys_the_limb_relations():
    field = synth.lead_field()
    i, ii, iii, avr, avl, avf = field[:6]
    np.testing.assert_allclose(iii, ii - i)
    np.testing.assert_allclose(avr, -(i + ii) / 2)
    np.testing.assert_allclose(avl, i - ii / 2)
    np.testing.assert_allclose(avf, ii - i / 2)


# --------------------------------------------------------------------------------------------
# Writer and round trip through the reader


def test_write_then_load_round_trip(tmp_path):
    records = pytest.importorskip(
        "team_code.data.records", reason="team_code/data/records.py not written yet"
    )
    spec = dataclasses.replace(random_spec(np.random.default_rng(3), [SB, IAVB]), noise=NOISY)
    signal, truth = synthesize(spec, fs=FS, duration_s=4, seed=9)
    path = write_record(
        tmp_path, "SYN00042", signal, FS, LEADS, age=67, sex="Female", dx=truth["labels"]
    )
    assert path == tmp_path / "SYN00042.hea" and (tmp_path / "SYN00042.mat").is_file()
    record = records.load_record(path)
    assert record.name == "SYN00042"
    assert record.signal.dtype == np.float32 and record.signal.shape == signal.shape
    assert np.abs(record.signal - signal).max() <= 1.0 / 1000.0
    assert record.fs == FS and record.leads == LEADS
    assert record.age == 67 and record.sex == "Female"
    assert record.labels == (SB, IAVB)

    # Unknown age and sex, another gain and a baseline offset.
    path = write_record(tmp_path, "X1", signal[:3], 257, LEADS[:3], gain=4880.0, baseline=-12)
    record = records.load_record(path)
    assert record.age is None and record.sex is None and record.labels == ()
    assert record.fs == 257 and record.leads == LEADS[:3]
    assert np.abs(record.signal - signal[:3]).max() <= 1.0 / 4880.0


def test_header_matches_the_2020_layout(tmp_path):
    signal = np.array([[0.028, 0.5, -1.2, 0.0], [-0.0015, 0.0, 0.001, 2.0]], dtype=np.float32)
    when = dt.datetime(2020, 2, 5, 11, 39, 16)
    write_record(
        tmp_path, "A0001", signal, 500, ["I", "II"], age=74, sex="Male",
        dx=["59118001", "164889003"], date=when,
    )  # fmt: skip
    lines = (tmp_path / "A0001.hea").read_text().splitlines()
    assert lines[0] == "A0001 2 500 4 05-Feb-2020 11:39:16"
    # Digital: I = [28, 500, -1200, 0] (sum -672), II = [-2, 0, 1, 2000] (sum 1999).
    assert lines[1] == "A0001.mat 16+24 1000/mV 16 0 28 -672 0 I"
    assert lines[2] == "A0001.mat 16+24 1000/mV 16 0 -2 1999 0 II"
    assert lines[3:] == [
        "#Age: 74",
        "#Sex: Male",
        "#Dx: 59118001,164889003",
        "#Rx: Unknown",
        "#Hx: Unknown",
        "#Sx: Unknown",
    ]
    mat = (tmp_path / "A0001.mat").read_bytes()
    assert len(mat) == 24 + 2 * signal.size  # "16+24": 24-byte MATLAB v4 header, int16 frames
    frames = np.frombuffer(mat[24:], dtype="<i2").reshape(4, 2)
    np.testing.assert_array_equal(frames[:, 0], [28, 500, -1200, 0])
    assert not list(tmp_path.glob("*.tmp"))  # temporary files renamed away

    write_record(tmp_path, "B1", signal, 500, ["I", "II"], date=False)
    text = (tmp_path / "B1.hea").read_text()
    assert text.splitlines()[0] == "B1 2 500 4"
    assert "#Age: NaN" in text and "#Sex: Unknown" in text


def test_checksum_matches_a_real_2020_header(shared_data):
    from scipy.io import loadmat

    header = (shared_data / "challenge" / "A0002.hea").read_text().splitlines()
    val = loadmat(shared_data / "challenge" / "A0002.mat")["val"]
    expected_first = [int(line.split()[5]) for line in header[1:13]]
    expected_sums = [int(line.split()[6]) for line in header[1:13]]
    np.testing.assert_array_equal(val[:, 0], expected_first)
    np.testing.assert_array_equal(wfdb_checksum(val), expected_sums)


def test_wfdb_reads_what_the_writer_writes(tmp_path):
    wfdb = pytest.importorskip("wfdb")
    signal, _ = synthesize(RecordSpec(noise=NOISY), fs=FS, duration_s=2, seed=1)
    write_record(tmp_path, "W1", signal, FS, LEADS, gain=[200.0] * 6 + [1000.0] * 6, date=False)
    record = wfdb.rdrecord(str(tmp_path / "W1"))
    assert record.sig_name == list(LEADS) and record.fs == FS
    np.testing.assert_allclose(record.p_signal.T, signal, atol=0.5 / 200 + 1e-6)
    digital = np.rint(record.p_signal.T * np.array(record.adc_gain)[:, None]).astype(int)
    np.testing.assert_array_equal(record.checksum, wfdb_checksum(digital))


@pytest.mark.parametrize(
    ("signal", "leads", "match"),
    [
        (np.zeros(100), ["I"], "2-D"),
        (np.full((2, 10), np.nan), ["I", "II"], "NaN"),
        (np.zeros((2, 10)), ["I"], "lead names"),
        (np.full((1, 10), 40.0), ["I"], "clipped"),
    ],
    ids=["1-D", "nan", "lead-count", "clipping"],
)
def test_writer_rejects_bad_input_naming_the_record(tmp_path, signal, leads, match):
    with pytest.raises(ValueError, match=match) as info:
        write_record(tmp_path, "BAD7", signal, 500, leads)
    assert "BAD7" in str(info.value)
    assert not list(tmp_path.iterdir())


def test_writer_clips_within_tolerance(tmp_path):
    signal = np.zeros((1, 1000))
    signal[0, 5] = 40.0  # one saturated sample in 1000
    with pytest.raises(ValueError, match="clipped"):
        write_record(tmp_path, "C1", signal, 500, ["I"])
    write_record(tmp_path, "C1", signal, 500, ["I"], max_clipped_fraction=0.01)
    from scipy.io import loadmat

    assert loadmat(tmp_path / "C1.mat")["val"][0, 5] == 32767


# --------------------------------------------------------------------------------------------
# Dataset and command line


def test_generate_dataset_balanced_labels_and_reproducible(tmp_path):
    records = pytest.importorskip(
        "team_code.data.records", reason="team_code/data/records.py not written yet"
    )
    n = len(COMBINATIONS)
    paths = generate_dataset(tmp_path / "a", n_records=n, seed=3, duration_s=4)
    assert [p.name for p in paths] == [f"SYN{i:05d}.hea" for i in range(1, n + 1)]
    assert len(list((tmp_path / "a").glob("*.mat"))) == n
    assert len(list((tmp_path / "a").iterdir())) == 2 * n
    loaded = [records.load_record(p) for p in paths]
    assert sorted(tuple(sorted(r.labels)) for r in loaded) == sorted(
        tuple(sorted(c)) for c in COMBINATIONS
    )  # each combination exactly once
    for record in loaded:
        assert record.signal.shape == (12, 4 * FS) and record.leads == LEADS
        assert record.labels[0] in (NSR, SB, STACH, AF)
        assert record.sex in ("Male", "Female", None)
    again = generate_dataset(tmp_path / "b", n_records=3, seed=3, duration_s=4)
    for p, q in zip(paths[:3], again):
        assert p.read_bytes() == q.read_bytes()
        assert p.with_suffix(".mat").read_bytes() == q.with_suffix(".mat").read_bytes()
    other = generate_dataset(tmp_path / "c", n_records=1, seed=4, duration_s=4)
    assert other[0].with_suffix(".mat").read_bytes() != paths[0].with_suffix(".mat").read_bytes()


@pytest.mark.filterwarnings("ignore:.*found in sys.modules:RuntimeWarning")  # runpy re-run
def test_cli_main_and_module_entry(tmp_path, capsys, monkeypatch):
    assert synth.main([str(tmp_path / "out"), "--n", "4", "--seed", "1", "--duration", "3"]) == 0
    assert "wrote 4 records" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").glob("*.hea")) == [
        f"SYN0000{i}.hea" for i in range(1, 5)
    ]
    # ``python -m team_code.data.synth`` runs the module as __main__ (in-process here).
    argv = ["synth", str(tmp_path / "m"), "--n", "2", "--fs", "250", "--duration", "2"]
    monkeypatch.setattr(sys, "argv", [*argv, "--prefix", "Q"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("team_code.data.synth", run_name="__main__", alter_sys=False)
    assert exit_info.value.code == 0
    header = (tmp_path / "m" / "Q00001.hea").read_text().splitlines()[0].split()
    assert header[:4] == ["Q00001", "12", "250", "500"]
