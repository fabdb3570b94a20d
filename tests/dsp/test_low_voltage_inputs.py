"""Low QRS voltage reads "every limb lead" and "every precordial lead": a maximum over the
leads that were measured is no such reading when some are missing."""

from __future__ import annotations

import math

from team_code.data.records import load_record
from team_code.dsp import features


def test_low_voltage_maxima_need_every_lead_of_their_group(shared_data):
    record = load_record(shared_data / "challenge" / "A0002.hea")
    full = features.measure_record(record).values
    assert math.isfinite(full["limb_qrs_max_mv"]) and math.isfinite(full["chest_qrs_max_mv"])
    rows = [record.leads.index(lead) for lead in ("I", "II", "V2")]
    three = features.measure(record.signal[rows], record.fs, [record.leads[i] for i in rows]).values
    assert math.isfinite(three["V2_qrs_pp_mv"])
    assert math.isnan(three["chest_qrs_max_mv"])  # V2 alone is not every precordial lead
    # the limb leads follow from I and II (Einthoven, Goldberger): all six are there
    assert abs(three["limb_qrs_max_mv"] - full["limb_qrs_max_mv"]) < 0.05
