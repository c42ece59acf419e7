"""`models:`: each model is a declared output of one entry point (or inside a declared output
directory); the typed Model records which. Located errors are pinned whole."""
from __future__ import annotations

from pathlib import Path

import pytest
from mlproject.runner.state.speccache import load_cached as load
from mlproject.runner.state.speccache import spec_from_json, spec_to_json
from mlproject.spec import Model
from specfiles import IGNORED, errors, warnings, write

PIPELINE = """
    entry_points:
      prepare:
        command: "true"
        outputs: [data/prepared]
      train:
        command: "true"
        outputs: [models/, reports/train.html]
        metrics: metrics.json
"""


def test_models_are_typed_with_the_entry_point_that_writes_them(here: Path) -> None:
    write(here, PIPELINE + """
    models:
      churn:
        path: models/churn.pkl
        description: "gradient-boosted churn classifier"
        labels: [tabular, production-candidate]
      churn/report: {path: ./reports/train.html}
      features: {path: data/prepared}
    """)
    spec = load("MLproject")
    assert spec.models == {
        "churn": Model("churn", "models/churn.pkl", "train", "models/",
                       "gradient-boosted churn classifier", ("tabular", "production-candidate")),
        "churn/report": Model("churn/report", "reports/train.html", "train",
                              "reports/train.html"),
        "features": Model("features", "data/prepared", "prepare", "data/prepared"),
    }
    assert list(spec.models) == ["churn", "churn/report", "features"]  # the file's order
    assert spec.warnings == ()
    assert spec_from_json(spec_to_json(spec)) == spec  # the spec cache holds it exactly
    assert load("MLproject") == spec  # and reads it back


def test_a_spec_without_models_has_none(here: Path) -> None:
    write(here, PIPELINE)
    assert load("MLproject").models == {}


def test_a_model_that_no_entry_point_writes(here: Path) -> None:
    assert errors(here, PIPELINE + """
    models:
      churn: {path: model.pkl}
    """) == ["MLproject:11:17: models.churn.path: 'model.pkl' is not a declared output of any "
             "entry point: add it to the `outputs:` of the entry point that writes it (declared "
             "outputs: data/prepared (prepare), models/ (train), reports/train.html (train))"]


def test_a_path_that_only_shares_a_prefix_with_an_output_is_not_inside_it(here: Path) -> None:
    assert errors(here, """
        entry_points:
          train: {command: "true", outputs: [models]}
        models:
          churn: {path: models2/churn.pkl}
    """) == ["MLproject:4:17: models.churn.path: 'models2/churn.pkl' is not a declared output "
             "of any entry point: add it to the `outputs:` of the entry point that writes it "
             "(declared outputs: models (train))"]


def test_a_model_with_no_outputs_declared_anywhere(here: Path) -> None:
    assert errors(here, """
        entry_points:
          train: {command: "true"}
        models:
          churn: {path: model.pkl}
    """) == ["MLproject:4:17: models.churn.path: 'model.pkl' is not a declared output of any "
             "entry point: add it to the `outputs:` of the entry point that writes it (declared "
             "outputs: none are declared)"]


def test_a_model_written_by_two_entry_points(here: Path) -> None:
    assert errors(here, """
        entry_points:
          train: {command: "true", outputs: [models/model.pkl]}
          tune: {command: "true", outputs: [models]}
        models:
          churn: {path: models/model.pkl}
    """) == ["MLproject:5:17: models.churn.path: 'models/model.pkl' is an output of several "
             "entry points (train, tune): a model must come from one"]


@pytest.mark.parametrize(("path", "why"), [
    ("../model.pkl", "leaves the project ('..' climbs out of its directory)"),
    ("/srv/model.pkl", "is an absolute path"),
    (".mlproject/runs/x", "is inside .mlproject, where mlproject keeps its runs and caches"),
])
def test_a_model_outside_the_project(here: Path, path: str, why: str) -> None:
    assert errors(here, f"""
        entry_points:
          train: {{command: "true", outputs: [models]}}
        models:
          churn: {{path: "{path}"}}
    """) == [f"MLproject:4:17: models.churn.path: {path!r} {why}: model paths are paths inside "
             "the project, relative to its directory"]


def test_model_names_follow_gtos_grammar(here: Path) -> None:
    assert errors(here, """
        entry_points:
          train: {command: "true", outputs: [m.pkl]}
        models:
          Churn@v1: {path: m.pkl}
    """) == ["MLproject:4:3: models.Churn@v1: 'Churn@v1' is not a valid model name: use "
             "lowercase letters, digits, '-' and '/', starting and ending with a letter or "
             "digit (the names of Git tags in GTO's grammar)"]


def test_a_model_needs_a_path_and_known_keys(here: Path) -> None:
    assert errors(here, """
        entry_points:
          train: {command: "true", outputs: [m.pkl]}
        models:
          churn: {description: "no path"}
          other: {path: m.pkl, labels: [a, a]}
    """) == ["MLproject:4:10: models.churn: missing required key 'path'",
             "MLproject:5:32: models.other.labels: [\'a\', \'a\'] has non-unique elements"]
    assert warnings(here, """
        entry_points:
          train: {command: "true", outputs: [m.pkl]}
        models:
          churn: {path: m.pkl, type: model}
    """) == [f"MLproject:4:24: warning: models.churn.type: unknown key 'type' {IGNORED}"]
    assert errors(here, """
        entry_points:
          train: {command: "true", outputs: [m.pkl]}
        models:
          churn: {path: m.pkl, type: model}
    """, strict=True) == ["MLproject:4:24: models.churn.type: unknown key 'type'"]


def test_models_must_be_a_mapping(here: Path) -> None:
    assert errors(here, """
        entry_points:
          train: {command: "true", outputs: [m.pkl]}
        models: [m.pkl]
    """) == ["MLproject:3:9: models: expected a mapping, got a list"]
