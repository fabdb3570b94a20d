"""benchmarks/rules.py --protocols nested: the choice among rules variants is made without the
held-out source, and every split's choice is reported (records: conftest's three_sources)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import rules as bench


def test_variants_parse_and_default():
    assert bench.parse_variants([]) == bench.NESTED_VARIANTS
    # the shipped options label by the expected-metric decision; the others at thresholds
    assert all(
        v.get("decision_policy") == "thresholds"
        for name, v in bench.NESTED_VARIANTS.items()
        if name != "shipped"
    )
    parsed = bench.parse_variants(["a=decision=half", "b=", "c=decision_objective=pooled,n_grid=5"])
    assert parsed == {
        "a": {"decision": "half"},
        "b": {},
        "c": {"decision_objective": "pooled", "n_grid": "5"},
    }
    with pytest.raises(SystemExit):
        bench.parse_variants(["nameless"])
    with pytest.raises(SystemExit):
        bench.parse_variants(["x=decision"])


def test_the_held_out_source_takes_no_part_in_the_choice(three_sources):
    records, values, sources, digests, truth, task, _ = three_sources
    classes = list(task.classes)
    variants = {"shipped": {}, "half": {"decision": "half", "tune": "false"}}
    first = bench.nested_loso(records, values, sources, digests, truth, classes, variants, {})
    assert set(first["chosen"]) == {"A", "E", "Q"}
    for split in first["chosen"].values():
        assert split["chosen"] in variants
        assert set(split["inner"]) == set(variants)
        assert split["chosen"] == max(split["inner"], key=split["inner"].get)

    # Scramble the labels of source Q: what its split chose (and the inner scores it chose
    # by) cannot change; the other splits, which train on Q, may.
    q = np.flatnonzero(np.array(sources) == "Q")
    scrambled = truth.copy()
    scrambled[q] = np.random.default_rng(0).permutation(truth[q], axis=1)
    assert not np.array_equal(scrambled, truth)
    second = bench.nested_loso(records, values, sources, digests, scrambled, classes, variants, {})
    assert second["chosen"]["Q"] == first["chosen"]["Q"]
    assert second["chosen"]["Q"]["inner"] == pytest.approx(first["chosen"]["Q"]["inner"])
    np.testing.assert_array_equal(second["binary"][q], first["binary"][q])


def test_nested_kfold_chooses_without_the_outer_fold(three_sources):
    """Nested grouped k-fold: each outer fold's choice is made on the other folds' records."""
    from team_code.classifiers.cv import grouped_kfold

    records, values, sources, digests, truth, task, _ = three_sources
    classes = list(task.classes)
    variants = {"shipped": {}, "half": {"decision": "half", "tune": "false"}}
    folds = grouped_kfold(truth, np.asarray(digests), 3, 0)
    first = bench.nested_kfold(
        records, values, sources, digests, truth, classes, variants, {}, folds=folds
    )
    assert set(first["chosen"]) == {"fold 1", "fold 2", "fold 3"}
    for split in first["chosen"].values():
        assert split["chosen"] == max(split["inner"], key=split["inner"].get)

    # Scramble the labels of the first outer fold: its choice and its inner scores (the other
    # folds' records) cannot change, nor its decisions.
    test = folds[0][1]
    scrambled = truth.copy()
    scrambled[test] = np.random.default_rng(0).permutation(truth[test], axis=1)
    assert not np.array_equal(scrambled, truth)
    second = bench.nested_kfold(
        records, values, sources, digests, scrambled, classes, variants, {}, folds=folds
    )
    assert second["chosen"]["fold 1"]["inner"] == pytest.approx(first["chosen"]["fold 1"]["inner"])
    np.testing.assert_array_equal(second["binary"][test], first["binary"][test])


def test_runs_of_different_code_combine_into_one_nested_choice(three_sources, tmp_path):
    """Each held-out source takes its decisions from the run whose chosen variant scored best
    on that split's inner loop; the variants of every run are counted."""
    records, values, sources, digests, truth, task, _ = three_sources
    classes = list(task.classes)
    names = list(records.names)
    runs = {
        "shipped": {"shipped": {}},
        "half": {"half": {"decision": "half", "tune": "false"}, "none": {"tune": "false"}},
    }
    nested = {}
    for run, variants in runs.items():
        nested[run] = bench.nested_loso(
            records, values, sources, digests, truth, classes, variants, {}
        )
        bench.save_nested(tmp_path / f"{run}.npz", names, truth, classes, nested[run], variants)
    combined = bench.combine_nested([tmp_path / "shipped.npz", tmp_path / "half.npz"], n_boot=20)
    assert combined["variants"] == 3
    sources = np.array(sources)
    for source, pick in combined["picks"].items():
        inner = {
            r: n["chosen"][source]["inner"][n["chosen"][source]["chosen"]]
            for r, n in nested.items()
        }
        best = "shipped" if inner["shipped"] >= inner["half"] else "half"
        assert pick["run"].endswith(f"{best}.npz")
        assert pick["inner"] == pytest.approx(inner[best])
        assert pick["variant"] == nested[best]["chosen"][source]["chosen"]
        rows = sources == source
        np.testing.assert_array_equal(combined["binary"][rows], nested[best]["binary"][rows])
    assert {r["source"] for r in combined["by_source"]["rows"]} == {*combined["picks"], "pooled"}

    other = dict(np.load(tmp_path / "half.npz"))
    other["truth"] = ~other["truth"]
    np.savez_compressed(tmp_path / "other.npz", **other)
    with pytest.raises(SystemExit, match="truth differ"):
        bench.combine_nested([tmp_path / "shipped.npz", tmp_path / "other.npz"], n_boot=20)


def test_the_sources_criterion_weighs_each_large_source_alike():
    """``pooled`` lets the largest source decide; ``sources`` averages the margins over the
    floor of the sources of MIN_SOURCE_RECORDS or more records, each counted once."""
    from team_code.data.labels import scored_classes

    table = scored_classes()
    classes = list(table.codes)
    abbreviations = [table.abbreviation(c) for c in classes]
    af, nsr = abbreviations.index("AF"), abbreviations.index("NSR")
    sources = np.array(["BIG"] * 60 + ["MID"] * 20 + ["TINY"] * 5)
    has_af = np.zeros(len(sources), bool)
    has_af[30:60] = has_af[70:80] = has_af[83:85] = True  # half of BIG and MID, 2 of TINY
    truth = np.zeros((len(sources), len(classes)), bool)
    truth[has_af, af] = True
    truth[~has_af, nsr] = True
    floor = np.zeros_like(truth)
    floor[:, nsr] = True  # the floor: NSR for every record (each source's metric 0)
    pays_big = floor.copy()  # every label right on BIG, nothing predicted on MID and TINY
    pays_big[:60] = truth[:60]
    pays_big[60:] = False
    holds = floor.copy()  # the floor on BIG, every label right on MID, nothing on TINY
    holds[60:80] = truth[60:80]
    holds[80:] = False

    def score(criterion, rules):
        return bench.inner_score(criterion, table.weights, truth, rules, floor, sources, classes)

    pooled_big, big_margins = score("pooled", pays_big)
    pooled_holds, _ = score("pooled", holds)
    by_sources_big, _ = score("sources", pays_big)
    by_sources_holds, margins = score("sources", holds)
    assert set(margins) == {"BIG", "MID", "TINY"}
    assert big_margins["BIG"] == pytest.approx(1.0) and big_margins["MID"] < 0
    assert margins["BIG"] == pytest.approx(0.0) and margins["MID"] == pytest.approx(1.0)
    assert margins["TINY"] < 0  # scored, but too small to count
    assert by_sources_holds == pytest.approx(0.5)  # (BIG + MID) / 2, TINY left out
    assert by_sources_big == pytest.approx((1.0 + big_margins["MID"]) / 2)
    assert by_sources_holds > by_sources_big  # sources: MID counts as much as BIG
    assert pooled_big > pooled_holds  # pooled: BIG's 60 records outweigh MID's 20
    with pytest.raises(ValueError, match="inner criterion"):
        score("median", holds)


def test_one_se_keeps_the_first_variant_within_one_standard_error_of_the_best():
    """``one-se``: the first variant stays where its score is within one standard error of
    the best's (the paired per-record difference of their contributions)."""
    from evaluation import metrics
    from team_code.data.labels import scored_classes

    table = scored_classes()
    classes = list(table.codes)
    af, nsr = table.abbreviations.index("AF"), table.abbreviations.index("NSR")
    rng = np.random.default_rng(3)
    has_af = rng.random(200) < 0.5
    truth = np.zeros((200, len(classes)), bool)
    truth[has_af, af] = True
    truth[~has_af, nsr] = True
    wrong = np.flatnonzero(has_af)[:40]  # AF records called sinus rhythm
    reference = truth.copy()
    reference[wrong, af], reference[wrong, nsr] = False, True
    close = reference.copy()  # 3 records better, 2 worse: a gain of one record's worth
    close[wrong[:3]] = truth[wrong[:3]]
    worse = np.flatnonzero(has_af)[40:42]
    close[worse, af], close[worse, nsr] = False, True
    clear = truth.copy()  # every record right
    outputs = {"reference": reference, "close": close, "clear": clear}

    def score(name):
        return metrics.compute_challenge_metric(table.weights, truth, outputs[name], classes)

    scored = {name: score(name) for name in outputs}
    assert scored["clear"] > scored["close"] > scored["reference"]
    choice, se = bench.one_se_choice(outputs, truth, classes)
    assert choice == "clear" and se["clear"] == 0.0
    assert scored["clear"] - scored["reference"] > se["reference"] > 0
    del outputs["clear"]
    choice, se = bench.one_se_choice(outputs, truth, classes)
    assert choice == "reference"  # the plain argmax would take "close"
    assert 0 < scored["close"] - scored["reference"] <= se["reference"]


def test_one_se_takes_the_best_where_the_first_is_outside_one_standard_error():
    """``one-se`` keeps the first listed variant (the shipped options) only within one
    standard error of the best; otherwise it takes the best, whatever the order of the other
    variants: a second variant inside one standard error is not preferred for being listed
    second (the order of ``--variant`` flags must not choose)."""
    from evaluation import metrics
    from team_code.data.labels import scored_classes

    table = scored_classes()
    classes = list(table.codes)
    af, nsr = table.abbreviations.index("AF"), table.abbreviations.index("NSR")
    has_af = np.random.default_rng(3).random(200) < 0.5
    truth = np.zeros((200, len(classes)), bool)
    truth[has_af, af] = True
    truth[~has_af, nsr] = True
    wrong = np.flatnonzero(has_af)

    def missing(rows):  # these AF records called sinus rhythm
        out = truth.copy()
        out[rows, af], out[rows, nsr] = False, True
        return out

    outputs = {
        "first": missing(wrong[:40]),
        "second": missing(wrong[2:5]),  # 3 records wrong, 2 of them not the best's
        "best": missing(wrong[:2]),
    }
    scored = {
        n: metrics.compute_challenge_metric(table.weights, truth, o, classes)
        for n, o in outputs.items()
    }
    assert scored["best"] > scored["second"] > scored["first"]
    choice, se = bench.one_se_choice(outputs, truth, classes)
    assert scored["best"] - scored["first"] > se["first"]
    assert 0 < scored["best"] - scored["second"] <= se["second"]
    assert choice == "best"
    for order in (["first", "best", "second"], ["first", "second", "best"]):
        assert bench.one_se_choice({n: outputs[n] for n in order}, truth, classes)[0] == "best"


def test_one_se_runs_are_chosen_by_it_and_not_combined(three_sources, tmp_path):
    records, values, sources, digests, truth, task, _ = three_sources
    classes = list(task.classes)
    variants = {"shipped": {}, "half": {"decision": "half", "tune": "false"}}
    nested = bench.nested_loso(
        records, values, sources, digests, truth, classes, variants, {}, criterion="one-se"
    )
    for split in nested["chosen"].values():
        gain = split["inner"]["half"] - split["inner"]["shipped"]
        assert split["chosen"] == ("half" if gain > split["se"]["shipped"] else "shipped")
    bench.save_nested(tmp_path / "a.npz", list(records.names), truth, classes, nested, variants)
    with pytest.raises(SystemExit, match="not combined"):
        bench.combine_nested([tmp_path / "a.npz", tmp_path / "a.npz"], n_boot=20)


def test_a_reduced_lead_task_is_measured_and_scored_as_its_own(three_sources, tmp_path):
    """``--task 2021 --leads 2``: the records are measured through leads I and II alone
    (chest-lead measures absent, a cache of its own), the rules are fitted for the 2021
    table's 26 classes and the nested choice is scored by that table; a saved run keeps its
    task, and runs of different tasks are not combined."""
    from evaluation.metrics import compute_challenge_metric
    from team_code.classifiers.cv import leave_one_source_out
    from team_code.context import Task

    records, values12, sources, digests, _, task12, _ = three_sources
    task = Task("2021", ("I", "II"))
    cache = tmp_path / "two.json"
    values = bench.measure_all(records, cache, leads=task.leads)
    name = records.names[0]
    assert np.isfinite(values[name]["I_r_mv"]) and np.isnan(values[name]["V1_r_mv"])
    assert np.isfinite(values12[name]["V1_r_mv"])
    again = bench.measure_all(records, cache, leads=task.leads)  # read back from the cache
    assert json.dumps(again, sort_keys=True) == json.dumps(values, sort_keys=True)
    assert bench.measure_all(records, cache)[name]["V1_r_mv"] == values12[name]["V1_r_mv"]

    truth, classes = task.truth(records), list(task.classes)
    assert len(classes) == 26
    variants = {"shipped": {}, "half": {"decision": "half", "tune": "false"}}
    nested = bench.nested_loso(
        records, values, sources, digests, truth, classes, variants, {}, task=task
    )
    assert nested["binary"].shape == (len(records), 26)
    for split in nested["chosen"].values():
        assert split["chosen"] == max(split["inner"], key=split["inner"].get)
    # the inner scores are the 2021 table's: refit one split's shipped variant by hand
    label, train, _ = leave_one_source_out(sources, digests)[0]
    inner = [
        (f"{label}/{s}", train[tr], train[te])
        for s, tr, te in leave_one_source_out(
            np.asarray(sources)[train], np.asarray(digests)[train]
        )
    ]
    rows = np.concatenate([te for _, _, te in inner])
    out = bench.cross_predict(records, values, inner, {}, quiet=True, task=task)["binary"]
    expected = compute_challenge_metric(
        task.scored.weights, truth[rows], out["rules"][rows], classes
    )
    assert nested["chosen"][label]["inner"]["shipped"] == pytest.approx(expected)

    names = list(records.names)
    bench.save_nested(tmp_path / "two.npz", names, truth, classes, nested, variants, task)
    assert bench._task(np.load(tmp_path / "two.npz")) == task
    combined = bench.combine_nested([tmp_path / "two.npz", tmp_path / "two.npz"], n_boot=20)
    np.testing.assert_array_equal(combined["binary"], nested["binary"])
    pooled = next(r for r in combined["by_source"]["rows"] if r["source"] == "pooled")
    expected = compute_challenge_metric(task.scored.weights, truth, nested["binary"], classes)
    assert pooled["methods"]["rules (nested choice)"]["challenge"] == pytest.approx(expected)
    other = dict(np.load(tmp_path / "two.npz"))
    other["task"] = json.dumps(task12.to_json())
    np.savez_compressed(tmp_path / "other.npz", **other)
    with pytest.raises(SystemExit, match="task differs"):
        bench.combine_nested([tmp_path / "two.npz", tmp_path / "other.npz"], n_boot=20)


def test_conventions_of_another_task_are_refused_before_any_record_is_read(tmp_path):
    """``--conventions`` reads the 2020 table on twelve leads: with another task the run stops
    at once, not after its protocols (whose tables and ``--json`` it would lose)."""
    args = bench.get_parser().parse_args(
        ["--data", str(tmp_path / "no-such-folder"), "--task", "2021", "--conventions"]
    )
    with pytest.raises(SystemExit, match="--conventions reads the 2020 table"):
        bench.rules_tables(args)


def test_one_se_weighs_with_the_tasks_table(monkeypatch):
    """The standard errors are taken with the table the task scores with (a custom
    weights.csv), not the shipped table of the classes."""
    import team_code.classifiers.hybrid as hybrid
    from team_code.data.labels import scored_classes

    table = scored_classes()
    classes = list(table.codes)
    truth = np.zeros((4, len(classes)), bool)
    truth[:, classes.index("426783006")] = True
    seen = []
    real = hybrid._record_contributions

    def spy(truth, binary, classes, scored):
        seen.append(scored)
        return real(truth, binary, classes, scored)

    monkeypatch.setattr(hybrid, "_record_contributions", spy)
    bench.one_se_choice({"a": truth, "b": ~truth}, truth, classes, table)
    assert seen == [table, table]


def test_a_variant_that_changes_the_measurements_is_refused():
    """Every variant is fitted on the one set of measurements the run makes: a variant of a
    measurement option would be scored on measurements it does not make."""
    fit_only = bench.parse_variants(["shipped=", "half=decision=half"])
    bench.check_variants_measure_alike(fit_only, {})
    with pytest.raises(SystemExit, match="--variant short changes the measurements"):
        bench.check_variants_measure_alike(
            bench.parse_variants(["shipped=", "short=max_duration_s=10,morphology_s=10"]), {}
        )


def test_the_measurement_cache_measures_a_replaced_file_again(challenge_dir, tmp_path):
    """``--cache FILE`` keeps each record's values under its name and its files' digests: a
    record whose signal was replaced under the same name is measured again, not served the
    old record's values."""
    import shutil

    from team_code.data.records import RecordSet

    data = tmp_path / "data"
    data.mkdir()
    for name in ("A0002", "A0003"):
        for ext in (".hea", ".mat"):
            shutil.copy(challenge_dir / f"{name}{ext}", data / f"{name}{ext}")
    cache = tmp_path / "cache.json"
    first = bench.measure_all(RecordSet.from_folder(data), cache)
    shutil.copy(challenge_dir / "A0003.mat", data / "A0002.mat")  # A0002 now holds A0003's signal
    again = bench.measure_all(RecordSet.from_folder(data), cache)
    assert again["A0002"]["hr_bpm"] == first["A0003"]["hr_bpm"] != first["A0002"]["hr_bpm"]


def test_vote_table_reproduces_each_splits_choice_and_held_out_score(three_sources):
    """``--vote CLASS``: per held-out source, the class's threshold as the leave-one-source-
    out fit chose it, and at that threshold the held-out source's metric as the LOSO table
    scores it; the other thresholds move the class's detections only."""
    from team_code.classifiers.cv import leave_one_source_out
    from team_code.classifiers.thresholds import RecordMetric

    records, values, sources, digests, truth, task, _ = three_sources
    classes = list(task.classes)
    names = [task.scored.abbreviation(c) for c in classes]
    abbr = names[int(np.argmax(truth.sum(axis=0)))]  # the commonest class of these records
    j = names.index(abbr)
    table = bench.vote_table(records, values, sources, digests, truth, task, {}, abbr)
    splits = [(f"source {s}", tr, te) for s, tr, te in leave_one_source_out(sources, digests)]
    # the vote's labels are the operating thresholds' (the rules' default labels by the
    # expected-metric policy, which reads the same held-out scores)
    at_thresholds = {"rules": {"decision_policy": "thresholds"}}
    loso = bench.cross_predict(records, values, splits, at_thresholds, quiet=True, task=task)
    assert set(table) == {"A", "E", "Q"}
    for source, split in table.items():
        test = np.array(sources) == source
        chosen = loso["chosen"][f"source {source}"]["thresholds"][j]
        assert split["chosen"] == pytest.approx(chosen)
        metric = RecordMetric(truth[test], classes, task.scored)
        expected = metric.score(
            metric.observed(loso["binary"]["rules"][test]), np.ones(test.sum(), bool)
        )
        at_chosen = [r for r in split["rows"] if r["threshold"] == pytest.approx(chosen)]
        assert len(at_chosen) == 1 and at_chosen[0]["held_out"] == pytest.approx(expected)
        assert at_chosen[0]["fires"] == int(loso["binary"]["rules"][test, j].sum())
        silent = split["rows"][0]
        assert silent["fires"] == 0 and set(silent["inner_fires"].values()) == {0}
        assert set(silent["inner"]) == {"A", "E", "Q"} - {source}
        fires = [r["fires"] for r in split["rows"][1:]]  # thresholds rising: fewer detections
        assert fires == sorted(fires, reverse=True)
    with pytest.raises(SystemExit, match="no class"):
        bench.vote_table(records, values, sources, digests, truth, task, {}, "NOPE")
