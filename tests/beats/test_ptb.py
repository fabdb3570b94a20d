"""MI/healthy record selection and grouping on the kit's Challenge and PTB records."""

from __future__ import annotations

import numpy as np

from team_code.beats import ptb


def test_mi_label():
    assert ptb.mi_label(("164865005",)) == 1
    assert ptb.mi_label(("426783006", "164867002")) == 1
    assert ptb.mi_label(("426783006",)) == 0
    assert ptb.mi_label(("426783006", "", "426783006")) == 0
    assert ptb.mi_label(("426783006", "59118001")) is None
    assert ptb.mi_label(("413844008",)) is None  # chronic ischemia is not an infarction


def test_entries_on_shared_data(shared_data):
    entries = ptb.find_entries([shared_data / "challenge", shared_data / "ptbdb"])
    by_name = {e.name: e for e in entries}
    # MANIFEST.csv dx_snomed: 18 records with an MI code, 43 with sinus rhythm alone; S0002
    # (sinus rhythm alone) is patient001 of PTB like S0003 (MI) and is dropped
    assert sum(e.label == 1 and e.source == "challenge" for e in entries) == 18
    assert sum(e.label == 0 for e in entries) == 42
    assert "S0002" not in by_name
    assert by_name["s0010_re"].label == 1 and by_name["s0010_re"].source == "ptbdb"
    # s0010_re is S0001's signal; both (and S0003) are patient001: age 81, female
    assert by_name["s0010_re"].group == by_name["S0003"].group == "ptb:81:female"
    assert by_name["HR00008"].group == "HR00008"


def test_mi_beats_lead_ii(shared_data):
    entries = [e for e in ptb.ptbdb_entries(shared_data / "ptbdb")]
    beats = ptb.mi_beats(entries, "kachuee2018", max_per_record=25)
    assert beats.x.shape == (25, 187)
    assert np.all(beats.y == 1) and set(beats.group) == {"ptb:81:female"}
