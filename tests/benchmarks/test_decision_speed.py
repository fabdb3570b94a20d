"""The decision-speed benchmark runs and prints one row per record count."""

from benchmarks import decision_speed


def test_prints_a_row_per_record_count(capsys):
    assert decision_speed.main(["--records", "40", "60", "--repeats", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert [row.split("|")[1].strip() for row in rows[1:]] == ["40", "60"]
