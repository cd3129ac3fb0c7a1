"""`start.json`: the run and checkpoint a WAM run started from, and the training steps behind
it, through chains of runs, on a chosen checkpoint, and across a resume."""

import json
import pathlib

import pytest

from genie_jax.config_loading import ConfigError
from wam_jax.run_start import recorded_start, run_start, steps_before, write_start


def _run(root: pathlib.Path, name: str, steps: tuple[int, ...], init: str = "") -> pathlib.Path:
    """A workdir with checkpoint directories at `steps` and the config `wam train` writes."""
    workdir = root / name
    workdir.mkdir()
    for step in steps:
        (workdir / "checkpoints" / str(step)).mkdir(parents=True)
    (workdir / "config.json").write_text(json.dumps({"seed": 0, "wam": {"init_workdir": init}}))
    return workdir


def test_a_chain_of_runs_counts_every_step_behind_the_start(tmp_path):
    bc = _run(tmp_path, "bc", (800, 1200))
    route = _run(tmp_path, "route", ())
    start = run_start(route, str(bc))
    assert start == {"init_workdir": str(bc), "init_step": 1200, "steps_before": 1200}
    write_start(route, start)
    assert recorded_start(route) == start

    # The route trains 400 steps; a joint run from it has 1600 behind its first step.
    (route / "checkpoints" / "400").mkdir(parents=True)
    (route / "config.json").write_text(json.dumps({"seed": 3, "wam": {"init_workdir": str(bc)}}))
    assert steps_before(route) == 1200 and steps_before(bc) == 0
    joint = run_start(tmp_path / "joint", str(route))
    assert (joint["init_step"], joint["steps_before"]) == (400, 1600)


def test_init_step_picks_a_checkpoint_and_an_absent_one_is_named(tmp_path):
    bc = _run(tmp_path, "bc", (600, 1200))
    start = run_start(tmp_path / "new", str(bc), init_step=600)
    assert (start["init_step"], start["steps_before"]) == (600, 600)
    with pytest.raises(
        ConfigError, match=r"init_step: .*no checkpoint at step 700 \(it has 600, 1200\)"
    ):
        run_start(tmp_path / "new", str(bc), init_step=700)
    with pytest.raises(ConfigError, match="holds no checkpoint"):
        run_start(tmp_path / "new", str(_run(tmp_path, "empty", ())))


def test_a_start_run_without_its_own_record_leaves_the_steps_unknown(tmp_path):
    """A run from another's weights trained before `start.json` existed: its steps behind are
    not on record, so neither are those of a run started from it."""
    old = _run(tmp_path, "old", (400,), init=str(tmp_path / "somewhere"))
    assert steps_before(old) is None
    start = run_start(tmp_path / "new", str(old))
    assert (start["init_step"], start["steps_before"]) == (400, None)


def test_a_resume_keeps_the_record_of_its_fresh_start(tmp_path):
    bc = _run(tmp_path, "bc", (1200,))
    route = tmp_path / "route"
    write_start(route, run_start(route, str(bc)))
    (route / "checkpoints" / "200").mkdir(parents=True)
    # The start run trained on; the resumed run still started from step 1200 and keeps it.
    (bc / "checkpoints" / "1600").mkdir()
    resumed = run_start(route, str(bc))
    assert (resumed["init_step"], resumed["steps_before"]) == (1200, 1200)
    write_start(route, {**resumed, "init_step": 1600})
    assert recorded_start(route)["init_step"] == 1200  # nothing rewritten on a resume

    # A run resumed from before the record: unknown, and nothing written for it.
    older = _run(tmp_path, "older", (200,), init=str(bc))
    unknown = run_start(older, str(bc))
    assert (unknown["init_step"], unknown["steps_before"]) == (None, None)
    write_start(older, unknown)
    assert recorded_start(older) is None


def test_a_fresh_start_from_scratch_drops_a_stale_record(tmp_path):
    """A fresh start from another run that failed before its first checkpoint, rerun from
    scratch: the record of the failed start goes."""
    bc = _run(tmp_path, "bc", (1200,))
    run = tmp_path / "run"
    write_start(run, run_start(run, str(bc)))
    assert recorded_start(run) is not None
    write_start(run, run_start(run, ""))
    assert recorded_start(run) is None
