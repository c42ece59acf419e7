"""Gates: `gates.evaluate` on real specs and locks, and `mlproject gate` in real Git
repositories with mlproject.lock committed at a base branch and changed at the head.

Whole lines are pinned: what a reviewer reads in a CI log is the contract.
"""
from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Result, git, git_init
from mlproject.runner.gitops.gates import Verdict, evaluate
from mlproject.runner.gitops.lockfile import LOCK_FILE, Lock, LockEntry
from mlproject.runner.state.speccache import load_cached as load
from mlproject.spec import Gate, Spec
from specfiles import IGNORED, errors, warnings, write

Cli = Callable[..., Result]

MLPROJECT = """
    entry_points:
      train:
        command: "python train.py"
        outputs: [models/model.pkl]
        metrics: metrics/train.json
      evaluate:
        needs: [train]
        command: "python evaluate.py"
        metrics: metrics/eval.json
        gates:
          accuracy: {min: 0.85}
          model_mb: {max: 200}
          auc: {not_worse_than: base, tolerance: 0.01}
          latency_ms: {not_worse_than: base, tolerance: 5, direction: lower}
"""
GOOD = {"accuracy": 0.9, "model_mb": 120, "auc": 0.91, "latency_ms": 40}


def entry(metrics: dict[str, float], fingerprint: str = "f" * 64) -> LockEntry:
    return LockEntry(fingerprint=fingerprint, parameters={}, command="python evaluate.py",
                     code="c" * 64, environment={"name": "local", "kind": "local"}, data={},
                     outputs={}, metrics=metrics)


def lock(**metrics: dict[str, float]) -> Lock:
    return Lock({name: entry(values) for name, values in metrics.items()})


def spec_of(tmp_path: Path, text: str = MLPROJECT) -> Spec:
    (tmp_path / "MLproject").write_text(textwrap.dedent(text).lstrip("\n"))
    return load(tmp_path)


def lines(verdicts: list[Verdict]) -> list[str]:
    return [v.line() for v in verdicts]


# -- evaluate: pure ------------------------------------------------------------------------------

def test_every_rule_passes_and_names_its_numbers(tmp_path: Path) -> None:
    base = lock(train={}, evaluate={"accuracy": 0.88, "model_mb": 100, "auc": 0.91,
                                    "latency_ms": 38})
    verdicts = evaluate(spec_of(tmp_path), lock(evaluate=GOOD), base)
    assert lines(verdicts) == [
        "PASS evaluate accuracy: 0.9 >= bound 0.85 (min)",
        "PASS evaluate model_mb: 120 <= bound 200 (max)",
        "PASS evaluate auc: 0.91 >= bound 0.9 = base 0.91 - tolerance 0.01",
        "PASS evaluate latency_ms: 40 <= bound 43 = base 38 + tolerance 5",
    ]
    assert [(v.value, v.bound, v.base_value, v.rule) for v in verdicts] == [
        (0.9, 0.85, None, "min"), (120, 200, None, "max"), (0.91, 0.9, 0.91, "not_worse_than"),
        (40, 43, 38, "not_worse_than")]
    assert all(v.passed for v in verdicts)


def test_every_rule_fails_and_says_by_how_much(tmp_path: Path) -> None:
    base = lock(evaluate={"auc": 0.93, "latency_ms": 30})
    head = lock(evaluate={"accuracy": 0.8, "model_mb": 250.5, "auc": 0.91, "latency_ms": 36})
    verdicts = evaluate(spec_of(tmp_path), head, base)
    assert lines(verdicts) == [
        "FAIL evaluate accuracy: 0.8 < bound 0.85 (min)",
        "FAIL evaluate model_mb: 250.5 > bound 200 (max)",
        "FAIL evaluate auc: 0.91 < bound 0.92 = base 0.93 - tolerance 0.01",
        "FAIL evaluate latency_ms: 36 > bound 35 = base 30 + tolerance 5",
    ]
    assert not any(v.passed for v in verdicts)


@pytest.mark.parametrize(("value", "passed"), [(0.6, True), (0.5999999, False)])
def test_a_value_exactly_at_the_bound_passes_despite_float_rounding(
        tmp_path: Path, value: float, passed: bool) -> None:
    # 0.7 - 0.1 is 0.59999999999999998 in binary floating point: the gate reads the decimals.
    spec = spec_of(tmp_path, """
        entry_points:
          main:
            command: "true"
            metrics: m.json
            gates: {score: {not_worse_than: base, tolerance: 0.1}}
    """)
    [verdict] = evaluate(spec, lock(main={"score": value}), lock(main={"score": 0.7}))
    assert (verdict.passed, verdict.bound) == (passed, 0.6)


def test_a_relative_tolerance_is_a_share_of_the_base_value(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, """
        entry_points:
          main:
            command: "true"
            metrics: m.json
            gates:
              auc: {not_worse_than: base, tolerance: 2%}
              loss: {not_worse_than: base, tolerance: "2.5%", direction: lower}
              drift: {not_worse_than: base, tolerance: 10%}
    """)
    gate = spec.entry_points["main"].gates[0]
    assert (gate.tolerance, gate.relative) == (0.02, True)
    base = lock(main={"auc": 0.9, "loss": 2.0, "drift": -4})
    assert lines(evaluate(spec, lock(main={"auc": 0.882, "loss": 2.06, "drift": -4.5}), base)) == [
        "PASS main auc: 0.882 >= bound 0.882 = base 0.9 - tolerance 2% (0.018)",
        "FAIL main loss: 2.06 > bound 2.05 = base 2.0 + tolerance 2.5% (0.05)",
        # a share of the base value's size, also when it is negative
        "FAIL main drift: -4.5 < bound -4.4 = base -4 - tolerance 10% (0.4)",
    ]


def test_a_missing_or_non_finite_metric_fails_with_that_reason(tmp_path: Path) -> None:
    head = lock(evaluate={"accuracy": float("nan"), "auc": float("inf"), "latency_ms": 40})
    base = lock(evaluate={"auc": 0.9, "latency_ms": 40})
    assert lines(evaluate(spec_of(tmp_path), head, base)) == [
        "FAIL evaluate accuracy: not a finite number: accuracy is nan in the lock entry of "
        "evaluate",
        "FAIL evaluate model_mb: missing: no metric 'model_mb' in the lock entry of evaluate",
        "FAIL evaluate auc: not a finite number: auc is inf in the lock entry of evaluate",
        "PASS evaluate latency_ms: 40 <= bound 45 = base 40 + tolerance 5",
    ]


def test_a_metric_that_is_not_a_number_fails(tmp_path: Path) -> None:
    # A lock is data from a file: evaluate does not trust its types.
    head = Lock({"evaluate": entry({**GOOD, "accuracy": "high", "model_mb": True})})  # type: ignore[dict-item]
    verdicts = evaluate(spec_of(tmp_path), head, None)
    assert lines(verdicts)[:2] == [
        "FAIL evaluate accuracy: not a number: accuracy is 'high' in the lock entry of evaluate",
        "FAIL evaluate model_mb: not a number: model_mb is True in the lock entry of evaluate",
    ]
    assert [(v.value, v.bound) for v in verdicts[:2]] == [(None, 0.85), (None, 200)]


def test_an_entry_point_that_never_ran_fails_every_gate(tmp_path: Path) -> None:
    verdicts = evaluate(spec_of(tmp_path), lock(train={}), lock(evaluate=GOOD))
    assert len(verdicts) == 4 and not any(v.passed for v in verdicts)
    assert verdicts[0].line() == ("FAIL evaluate accuracy: evaluate has no entry in "
                                  "mlproject.lock: run it (`mlproject run . -e evaluate`) and "
                                  "commit the lock")


def test_without_a_baseline_not_worse_than_passes_with_a_note(tmp_path: Path) -> None:
    spec = spec_of(tmp_path)
    cases = [(None, "no mlproject.lock at the base"),
             (lock(train={}), "the base lock has no entry evaluate"),
             (lock(evaluate={"auc": 0.9}), "at the base, missing: no metric 'latency_ms'")]
    for base, why in cases:
        *_, latency = evaluate(spec, lock(evaluate=GOOD), base)
        assert latency.line() == f"PASS evaluate latency_ms: 40, no baseline ({why}): not compared"
        assert (latency.bound, latency.base_value) == (None, None)
        *_, required = evaluate(spec, lock(evaluate=GOOD), base, require_base=True)
        assert required.line() == (f"FAIL evaluate latency_ms: 40, no baseline ({why}) and "
                                   "--require-base")
    # min and max need no base
    assert [v.passed for v in evaluate(spec, lock(evaluate=GOOD), None, require_base=True)] == [
        True, True, False, False]


def test_one_gate_may_hold_several_rules(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, """
        entry_points:
          main:
            command: "true"
            metrics: m.json
            gates: {f1: {min: 0.5, max: 0.99, not_worse_than: base}}
    """)
    assert lines(evaluate(spec, lock(main={"f1": 0.995}), lock(main={"f1": 0.98}))) == [
        "PASS main f1: 0.995 >= bound 0.5 (min)",
        "FAIL main f1: 0.995 > bound 0.99 (max)",
        "PASS main f1: 0.995 >= bound 0.98 = base 0.98 - tolerance 0",
    ]


# -- `mlproject gate` in real repositories ------------------------------------------------------

def repository(root: Path, base: Lock | None) -> Path:
    """A project whose main branch commits `base` as its lock, then a head branch."""
    root.mkdir()
    (root / "MLproject").write_text(textwrap.dedent(MLPROJECT).lstrip("\n"))
    if base is not None:
        (root / LOCK_FILE).write_text(base.to_text())
    git_init(root)
    git(root, "checkout", "-q", "-b", "feature")
    return root


def at_head(root: Path, head: Lock, *, commit: bool = False) -> None:
    (root / LOCK_FILE).write_text(head.to_text())
    if commit:
        git(root, "add", LOCK_FILE)
        git(root, "commit", "-q", "-m", "retrain")


BASE = lock(train={}, evaluate={"accuracy": 0.88, "model_mb": 100, "auc": 0.91, "latency_ms": 38})


def test_gate_passes_against_the_base_branch(tmp_path: Path, cli: Cli) -> None:
    root = repository(tmp_path / "proj", BASE)
    at_head(root, lock(train={}, evaluate=GOOD), commit=True)
    result = cli("gate", str(root), "--base", "main")
    assert (result.code, result.err) == (0, "")
    assert result.out.splitlines() == [
        "PASS evaluate accuracy: 0.9 >= bound 0.85 (min)",
        "PASS evaluate model_mb: 120 <= bound 200 (max)",
        "PASS evaluate auc: 0.91 >= bound 0.9 = base 0.91 - tolerance 0.01",
        "PASS evaluate latency_ms: 40 <= bound 43 = base 38 + tolerance 5",
        "4 passed, 0 failed (head: mlproject.lock in the working tree; base main)",
    ]


def test_a_regression_in_the_working_tree_fails_the_gate(tmp_path: Path, cli: Cli) -> None:
    root = repository(tmp_path / "proj", BASE)
    at_head(root, lock(train={}, evaluate={**GOOD, "auc": 0.89}))  # not committed: the tree counts
    result = cli("gate", str(root), "--base", "main")
    assert result.code == 1
    assert "FAIL evaluate auc: 0.89 < bound 0.9 = base 0.91 - tolerance 0.01\n" in result.out
    assert result.out.endswith("3 passed, 1 failed (head: mlproject.lock in the working tree; "
                               "base main)\n")


def test_gate_json_is_for_machines(tmp_path: Path, cli: Cli) -> None:
    root = repository(tmp_path / "proj", BASE)
    at_head(root, lock(train={}, evaluate={**GOOD, "accuracy": 0.5}))
    result = cli("gate", str(root), "--base", "main", "--json")
    assert result.code == 1
    report = json.loads(result.out)
    assert (report["format"], report["base"], report["base_has_lock"], report["passed"]) == (
        "mlproject.gates/1", "main", True, False)
    assert report["verdicts"][0] == {
        "entry_point": "evaluate", "metric": "accuracy", "rule": "min", "value": 0.5,
        "bound": 0.85, "base_value": None, "passed": False,
        "reason": "0.5 < bound 0.85 (min)"}
    assert [v["passed"] for v in report["verdicts"]] == [False, True, True, True]


def test_the_first_pull_request_has_no_baseline(tmp_path: Path, cli: Cli) -> None:
    root = repository(tmp_path / "proj", None)
    at_head(root, lock(train={}, evaluate=GOOD))
    result = cli("gate", str(root), "--base", "main")
    assert result.code == 0
    assert result.out.splitlines()[2:] == [
        "PASS evaluate auc: 0.91, no baseline (no mlproject.lock at the base): not compared",
        "PASS evaluate latency_ms: 40, no baseline (no mlproject.lock at the base): not compared",
        "4 passed, 0 failed (head: mlproject.lock in the working tree; base main, which has no "
        "mlproject.lock)",
    ]
    required = cli("gate", str(root), "--base", "main", "--require-base")
    assert required.code == 1
    assert "FAIL evaluate auc: 0.91, no baseline (no mlproject.lock at the base) and " \
           "--require-base\n" in required.out


def test_the_default_base_is_origin_main_then_main(tmp_path: Path, cli: Cli,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_BASE_REF", raising=False)
    root = repository(tmp_path / "proj", BASE)
    at_head(root, lock(train={}, evaluate={**GOOD, "auc": 0.95}), commit=True)
    assert cli("gate", str(root)).out.endswith("; base main)\n")
    # origin/main, when there is one, is what a pull request is compared with: here it holds
    # a better auc than the local main
    git(root, "checkout", "-q", "main")
    at_head(root, lock(train={}, evaluate={**GOOD, "auc": 0.97}), commit=True)
    git(root, "update-ref", "refs/remotes/origin/main", "main")
    git(root, "reset", "-q", "--hard", "HEAD~1")
    git(root, "checkout", "-q", "feature")
    result = cli("gate", str(root))
    assert result.code == 1
    assert "FAIL evaluate auc: 0.95 < bound 0.96 = base 0.97 - tolerance 0.01\n" in result.out
    assert result.out.endswith("; base origin/main)\n")
    # on GitHub Actions, the pull request's own base branch
    git(root, "update-ref", "refs/remotes/origin/release", "main")
    monkeypatch.setenv("GITHUB_BASE_REF", "release")
    assert cli("gate", str(root)).out.endswith("; base origin/release)\n")


def test_no_base_to_be_found_is_a_usage_error(tmp_path: Path, cli: Cli,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_BASE_REF", raising=False)
    root = repository(tmp_path / "proj", BASE)
    git(root, "branch", "-q", "-m", "main", "trunk")
    at_head(root, lock(train={}, evaluate=GOOD))
    result = cli("gate", str(root))
    assert (result.code, result.out) == (2, "")
    assert result.err == ("mlproject: error: no base to compare with: none of origin/main, "
                          "main, origin/master, master names a commit here; give one with "
                          "--base REF\n")


def test_an_unknown_base_exits_2_naming_it(tmp_path: Path, cli: Cli) -> None:
    root = repository(tmp_path / "proj", BASE)
    at_head(root, lock(train={}, evaluate=GOOD))
    result = cli("gate", str(root), "--base", "no-such-branch")
    assert (result.code, result.out) == (2, "")
    assert result.err == (f"mlproject: error: unknown revision 'no-such-branch': Git knows no "
                          f"commit of that name in {root} (fetch it first? `git fetch origin "
                          f"no-such-branch`)\n")


def test_no_lock_at_the_head_says_to_run_first(tmp_path: Path, cli: Cli) -> None:
    root = repository(tmp_path / "proj", None)
    result = cli("gate", str(root), "--base", "main")
    assert (result.code, result.out) == (2, "")
    assert result.err == (f"mlproject: error: no mlproject.lock in {root}: run the pipeline "
                          "first (`mlproject run`), which writes it, then gate\n")


def test_a_corrupt_lock_at_either_end_exits_2(tmp_path: Path, cli: Cli) -> None:
    root = repository(tmp_path / "proj", BASE)
    (root / LOCK_FILE).write_text("{not json")
    head = cli("gate", str(root), "--base", "main")
    assert head.code == 2 and head.err.startswith(f"mlproject: error: {root / LOCK_FILE} is not JSON")
    git(root, "commit", "-q", "-am", "break the lock")
    at_head(root, lock(train={}, evaluate=GOOD))
    base = cli("gate", str(root), "--base", "feature")
    assert base.code == 2 and base.err.startswith("mlproject: error: mlproject.lock at feature (")


def test_a_spec_without_gates_has_nothing_to_check(tmp_path: Path, cli: Cli) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "MLproject").write_text("entry_points:\n  main: {command: 'true'}\n")
    (root / LOCK_FILE).write_text(lock(main={}).to_text())
    git_init(root)
    result = cli("gate", str(root), "--base", "main")
    assert (result.code, result.out) == (0, "no gates in MLproject: nothing to check\n")


def test_an_invalid_mlproject_exits_2(tmp_path: Path, cli: Cli) -> None:
    root = repository(tmp_path / "proj", BASE)
    (root / "MLproject").write_text("entry_points:\n  main: {command: 'true', gates: {a: {min: x}}}\n")
    result = cli("gate", str(root), "--base", "main")
    assert result.code == 2
    assert "entry_points.main.gates.a" in result.err


# -- the gates as the file declares them --------------------------------------------------------

def test_tolerance_is_an_amount_or_a_percentage(here: Path) -> None:
    assert errors(here, """
        entry_points:
          main:
            command: "true"
            metrics: m.json
            gates:
              auc: {not_worse_than: base, tolerance: 2 %}
              f1: {not_worse_than: base, tolerance: -0.1}
    """) == ["MLproject:6:46: entry_points.main.gates.auc.tolerance: '2 %' is not a tolerance: "
             "give an amount of the metric (a number, 0 or more, e.g. 0.01) or a percentage of "
             "the base value (e.g. 2%)",
             "MLproject:7:45: entry_points.main.gates.f1.tolerance: -0.1 is not a tolerance: "
             "give an amount of the metric (a number, 0 or more, e.g. 0.01) or a percentage of "
             "the base value (e.g. 2%)"]


def test_bounds_that_no_value_can_pass(here: Path) -> None:
    assert errors(here, """
        entry_points:
          main:
            command: "true"
            metrics: m.json
            gates:
              acc: {min: 0.9, max: 0.8}
              loss: {max: .inf}
              auc: {not_worse_than: base, tolerance: .nan}
    """) == ["MLproject:6:18: entry_points.main.gates.acc.min: min 0.9 is above max 0.8: no "
             "value can pass",
             "MLproject:7:19: entry_points.main.gates.loss.max: max must be a finite number, "
             "not inf",
             "MLproject:8:46: entry_points.main.gates.auc.tolerance: tolerance must be a finite "
             "number, not nan"]


def test_gates_need_no_metrics_file(here: Path) -> None:
    """What the code logs (mlproject.log, MLflow's API) reaches the lock too: gates on an entry
    point without a metrics file are checked against that, and are no mistake of the file."""
    text = """
        entry_points:
          main:
            command: "true"
            gates: {acc: {min: 0.9}}
    """
    assert warnings(here, text) == []


def test_tolerance_and_direction_without_not_worse_than_are_warned(here: Path) -> None:
    text = """
        entry_points:
          main:
            command: "true"
            metrics: m.json
            gates: {acc: {min: 0.9, tolerance: 0.01, direction: lower}}
    """
    assert warnings(here, text) == [
        "MLproject:5:29: warning: entry_points.main.gates.acc.tolerance: tolerance applies only "
        "to `not_worse_than: base` (add it, or remove this key)",
        "MLproject:5:46: warning: entry_points.main.gates.acc.direction: direction applies only "
        "to `not_worse_than: base` (add it, or remove this key)"]
    assert len(errors(here, text, strict=True)) == 2


def test_keys_the_model_keeps_to_itself_are_not_read_from_the_file(here: Path) -> None:
    write(here, """
        entry_points:
          main:
            command: "true"
            metrics: m.json
            gates: {acc: {not_worse_than: base, tolerance: 0.5, relative: true, metric: other}}
    """)
    spec = load("MLproject")
    assert spec.entry_points["main"].gates == (
        Gate("acc", not_worse_than="base", tolerance=0.5, relative=False),)
    assert [w.message for w in spec.warnings] == [
        f"unknown key 'relative' {IGNORED}", f"unknown key 'metric' {IGNORED}"]


# -- end to end: the lock `mlproject run` writes, committed at the base ----------------------------

def test_a_pull_request_that_regresses_fails_its_gate(tmp_path: Path, cli: Cli) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "MLproject").write_text(textwrap.dedent("""
        entry_points:
          main:
            parameters: {auc: {type: float, default: 0.9}}
            command: "python write.py {auc}"
            metrics: m.json
            gates: {auc: {not_worse_than: base, tolerance: 0.01}}
    """).lstrip("\n"))
    (root / "write.py").write_text(
        "import json, sys\njson.dump({'auc': float(sys.argv[1])}, open('m.json', 'w'))\n")
    (root / ".gitignore").write_text("m.json\n")
    git_init(root, commit=False)
    assert cli("run", str(root), "-e", "main").code == 0
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base: trained")
    git(root, "checkout", "-q", "-b", "pr")
    assert cli("run", str(root), "-P", "auc=0.895").code == 0
    assert cli("gate", str(root), "--base", "main").out.splitlines() == [
        "PASS main auc: 0.895 >= bound 0.89 = base 0.9 - tolerance 0.01",
        "1 passed, 0 failed (head: mlproject.lock in the working tree; base main)"]
    assert cli("run", str(root), "-P", "auc=0.85").code == 0
    result = cli("gate", str(root), "--base", "main")
    assert (result.code, result.out.splitlines()[0]) == (
        1, "FAIL main auc: 0.85 < bound 0.89 = base 0.9 - tolerance 0.01")
