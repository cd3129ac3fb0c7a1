"""`wam summarize`: rows per evaluated run, seed groups with mean and spread, and each
method's difference from behaviour cloning on the group means."""

import json
import math
import pathlib

import pytest

from wam_jax.cli import main
from wam_jax.study_table import StudyTableError, format_table, summarize_runs


def _evaluated_run(
    root: pathlib.Path,
    name: str,
    *,
    success: float,
    seed: int,
    bc: bool = True,
    named: str = "",
    init: str = "",
    temperature: float = 1.0,
    seed_in_meta: bool = True,
    fraction: float = 0.1,
    on_policy: str = "",
    step: int = 1200,
    before: int | None = None,
    solved: list[bool] | None = None,
    model: dict | None = None,
) -> pathlib.Path:
    """A workdir as `wam train` + `wam eval` leave it, with only what the table reads;
    `before`: the steps behind the start of a run from `init` (its `start.json`); `solved`:
    the outcome on test seeds 90000, 90001, ..., in the evaluation's `episodes.jsonl`;
    `model`: the WAM options in its config (None: none on record, the defaults)."""
    workdir = root / name
    (workdir / "eval").mkdir(parents=True)
    wam = {"init_workdir": init} | ({} if model is None else {"model": model})
    (workdir / "config.json").write_text(json.dumps({"seed": seed, "wam": wam}))
    if before is not None:
        start = {"init_workdir": init, "init_step": before, "steps_before": before}
        (workdir / "start.json").write_text(json.dumps(start))
    meta = {
        "step": step,
        "seeds": [90000, 90200],
        "label_fraction": fraction,
        "behaviour_cloning": bc,
        "stage": "joint",
        "named_actions": named,
        "on_policy_data_dir": on_policy,
        "action_temperature": temperature,
        "action_source": "policy",
    }
    if seed_in_meta:
        meta["train_seed"] = seed
    metrics = {
        "success_rate": success,
        "mean_episode_length": 20.0,
        "video_psnr_by_step": [],
        "random_policy": {"success_rate": 0.3},
        "episodes": 200,
        "meta": meta,
    }
    if solved is not None:
        # As `wam eval` writes it: a directory per evaluation, named in the newest's copy.
        directory = workdir / "eval" / f"step_{step}_seeds90000-90200_t1"
        directory.mkdir()
        records = [{"seed": 90000 + i, "success": won} for i, won in enumerate(solved)]
        (directory / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        meta["outputs"] = [str(directory / "metrics.json"), str(directory / "episodes.jsonl")]
        (directory / "metrics.json").write_text(json.dumps(metrics))
    (workdir / "eval" / "metrics.json").write_text(json.dumps(metrics))
    return workdir


def test_seed_groups_give_mean_spread_and_the_difference_from_bc(tmp_path):
    runs = [
        _evaluated_run(tmp_path, f"bc_seed{seed}", success=rate, seed=seed)
        for seed, rate in ((0, 0.8), (1, 0.5), (2, 0.6))
    ]
    # Named-action runs started from two of the BC runs; one keeps seed 0 for its own steps.
    runs += [
        _evaluated_run(tmp_path, "named0", success=0.9, seed=0, named="n.npz", init="bc_seed0"),
        _evaluated_run(tmp_path, "named1", success=0.7, seed=0, named="n.npz", init="bc_seed1"),
    ]
    # The same BC run evaluated another way is not pooled with the rest.
    runs.append(_evaluated_run(tmp_path, "argmax", success=0.2, seed=3, temperature=0.0))
    table = summarize_runs(runs, tmp_path / "study.json")
    assert json.loads((tmp_path / "study.json").read_text()) == table
    assert [row["train_seed"] for row in table["runs"]] == [0, 1, 2, 0, 0, 3]
    bc, named, argmax = table["groups"]
    assert (bc["kind"], bc["runs"], named["kind"], named["runs"]) == ("bc", 3, "bc + named", 2)
    mean = (0.8 + 0.5 + 0.6) / 3
    std = math.sqrt(sum((x - mean) ** 2 for x in (0.8, 0.5, 0.6)) / 2)
    assert bc["success_mean"] == pytest.approx(mean) and bc["success_std"] == pytest.approx(std)
    assert (bc["success_min"], bc["success_max"]) == (0.5, 0.8)
    assert bc["success_minus_bc"] is None
    # Runs from another's weights with no `start.json`: their steps are not on record, so
    # they are compared with nothing.
    assert named["training_steps"] is None and named["success_minus_bc"] is None
    assert bc["training_steps"] == 1200
    # One run: no spread; no BC group evaluated at temperature 0, so no difference.
    assert argmax["success_std"] is None and argmax["success_minus_bc"] is None
    assert argmax["action_temperature"] == 0.0


def test_a_method_is_compared_with_bc_trained_as_many_steps(tmp_path):
    """The VPT route, 400 steps from a 1200-step BC run, against BC continued 400 steps from
    the same runs (1600 steps in all), not against the BC runs it started from."""
    runs = []
    for seed, rate, more, named in ((0, 0.8, 0.85, 0.95), (1, 0.5, 0.6, 0.9)):
        start = {"init": f"bc_seed{seed}", "step": 400, "before": 1200}
        runs += [
            _evaluated_run(tmp_path, f"bc_seed{seed}", success=rate, seed=seed),
            _evaluated_run(tmp_path, f"bc_more{seed}", success=more, seed=seed, **start),
            _evaluated_run(
                tmp_path, f"named{seed}", success=named, seed=seed, named="n.npz", **start
            ),
        ]
    table = summarize_runs(runs, tmp_path / "study.json")
    assert [row["training_steps"] for row in table["runs"]] == [1200, 1600, 1600] * 2
    bc, bc_more, named = table["groups"]
    assert [g["training_steps"] for g in (bc, bc_more, named)] == [1200, 1600, 1600]
    assert (bc["runs"], bc_more["runs"], named["runs"]) == (2, 2, 2)
    assert named["success_minus_bc"] == pytest.approx((0.95 + 0.9) / 2 - (0.85 + 0.6) / 2)
    assert "+0.200 against bc at the same steps" in format_table(table)


def test_runs_on_on_policy_data_are_a_kind_of_their_own(tmp_path):
    """BC on the expert's episodes and a policy's (DAgger) is compared with BC at the same
    100% labels, not pooled with it."""
    runs = [
        _evaluated_run(tmp_path, "bc", success=0.9, seed=0, fraction=1.0),
        _evaluated_run(tmp_path, "dagger", success=0.96, seed=0, fraction=1.0, on_policy="p"),
    ]
    bc, dagger = summarize_runs(runs, tmp_path / "study.json")["groups"]
    assert (bc["kind"], dagger["kind"]) == ("bc", "bc + on-policy")
    assert dagger["success_minus_bc"] == pytest.approx(0.06)


def test_an_evaluation_without_its_seed_reads_the_runs_config(tmp_path):
    run = _evaluated_run(tmp_path, "old", success=0.5, seed=7, seed_in_meta=False)
    table = summarize_runs([run], tmp_path / "study.json")
    assert table["runs"][0]["train_seed"] == 7


def test_two_runs_with_one_seed_and_start_are_refused(tmp_path):
    first = _evaluated_run(tmp_path, "a", success=0.5, seed=1)
    second = _evaluated_run(tmp_path, "b", success=0.6, seed=1)
    with pytest.raises(StudyTableError, match=r"same training seed and start \(.*a, .*b\)"):
        summarize_runs([first, second], tmp_path / "study.json")
    assert not (tmp_path / "study.json").exists()


def test_summarize_names_an_unevaluated_workdir(tmp_path, capsys):
    (tmp_path / "fresh").mkdir()
    assert main(["summarize", "--out", str(tmp_path / "t.json"), str(tmp_path / "fresh")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("wam summarize: error:") and "run `wam eval` on" in error
    assert len(error.splitlines()) == 1


def test_an_evaluation_directory_picks_that_evaluation_not_the_newest(tmp_path):
    run = _evaluated_run(tmp_path, "bc", success=0.9, seed=1)
    # `wam eval` leaves each evaluation in its own directory and the newest one's copy at
    # W/eval/metrics.json: here step 800 first, then step 600 (the newest).
    older = run / "eval" / "step_800_seeds90000-90200_t1"
    older.mkdir()
    first = json.loads((run / "eval" / "metrics.json").read_text())
    first["meta"]["step"] = 800
    (older / "metrics.json").write_text(json.dumps(first))
    newest = json.loads((run / "eval" / "metrics.json").read_text())
    newest["success_rate"], newest["meta"]["step"] = 0.89, 600
    (run / "eval" / "metrics.json").write_text(json.dumps(newest))

    by_workdir = summarize_runs([run], tmp_path / "a.json")["runs"][0]
    assert (by_workdir["step"], by_workdir["success_rate"]) == (600, 0.89)
    by_evaluation = summarize_runs([older], tmp_path / "b.json")["runs"][0]
    assert (by_evaluation["step"], by_evaluation["success_rate"]) == (800, 0.9)
    # The row still names the run (its seed and start come from the workdir's config).
    assert by_evaluation["run"] == str(run) and by_evaluation["train_seed"] == 1
    assert by_evaluation["evaluation"] == str(older / "metrics.json")

    # A directory that is neither is named in the error.
    with pytest.raises(StudyTableError, match=r"step_400.*not found"):
        summarize_runs([run / "eval" / "step_400"], tmp_path / "c.json")


def test_a_run_is_paired_with_bc_of_its_seed_on_the_seeds_both_played(tmp_path):
    """Per test seed: the joint WAM solves 0-3 and 5, BC of the same seed and steps 0, 1 and 4
    (only the WAM: 2, 3, 5; only BC: 4), so +2/6 with the paired standard error by hand; BC
    of another training seed, and a run whose evaluation left no episodes, are paired with
    nothing."""
    joint = [True, True, True, True, False, True]
    bc = [True, True, False, False, True, False]
    runs = [
        _evaluated_run(tmp_path, "bc", success=0.5, seed=0, solved=bc),
        _evaluated_run(tmp_path, "bc_seed1", success=0.9, seed=1, solved=[True] * 6),
        _evaluated_run(tmp_path, "joint", success=5 / 6, seed=0, bc=False, solved=joint),
        _evaluated_run(tmp_path, "joint_seed2", success=0.5, seed=2, bc=False, solved=bc),
        _evaluated_run(tmp_path, "joint_seed1_old", success=0.7, seed=1, bc=False),
    ]
    table = summarize_runs(runs, tmp_path / "study.json")
    rows = {pathlib.Path(row["run"]).name: row for row in table["runs"]}
    paired = rows["joint"]["paired_with_bc"]
    differences = [1 * a - 1 * b for a, b in zip(joint, bc)]
    mean = sum(differences) / 6
    se = math.sqrt(sum((d - mean) ** 2 for d in differences) / 5 / 6)
    assert paired == {
        "bc_run": str(tmp_path / "bc"),
        "episodes": 6,
        "only_this": 3,
        "only_bc": 1,
        "difference": pytest.approx(2 / 6),
        "difference_se": pytest.approx(se),
    }
    assert rows["joint_seed2"]["paired_with_bc"] is None  # no BC run of seed 2
    assert rows["joint_seed1_old"]["paired_with_bc"] is None  # no episodes.jsonl
    assert rows["bc"]["paired_with_bc"] is None
    assert "paired with " + str(tmp_path / "bc") + " on 6 seeds: +0.333" in format_table(table)
    # The evaluation directory itself pairs the same way as the workdir's newest copy.
    directory = tmp_path / "joint" / "eval" / "step_1200_seeds90000-90200_t1"
    by_directory = summarize_runs([runs[0], directory], tmp_path / "b.json")["runs"][1]
    assert by_directory["paired_with_bc"] == paired


def test_a_corrupt_episodes_file_is_named(tmp_path):
    runs = [
        _evaluated_run(tmp_path, "bc", success=0.5, seed=0, solved=[True, False]),
        _evaluated_run(tmp_path, "joint", success=0.5, seed=0, bc=False, solved=[False, True]),
    ]
    episodes = runs[0] / "eval" / "step_1200_seeds90000-90200_t1" / "episodes.jsonl"
    episodes.write_text('{"seed": 90000, "success": true}\n{"seed": 900')
    with pytest.raises(StudyTableError, match=r"bc/eval/step_1200.*episodes.jsonl: not one"):
        summarize_runs(runs, tmp_path / "study.json")
    assert not (tmp_path / "study.json").exists()


def test_of_two_bc_runs_of_one_seed_the_one_from_the_same_start_is_paired(tmp_path):
    """Two BC arms of seed 0 at 1600 steps (from two 1200-step runs with other options): the
    joint WAM started from `start_b` pairs with BC from `start_b`; a run from a third start
    pairs with neither."""
    start = {"step": 400, "before": 1200, "success": 0.5, "seed": 0}
    runs = [
        _evaluated_run(tmp_path, "bc_a", init="start_a", solved=[True, False], **start),
        _evaluated_run(tmp_path, "bc_b", init="start_b", solved=[False, True], **start),
    ]
    for name in ("joint_b", "joint_c"):
        init = "start_" + name[-1]
        runs.append(_evaluated_run(tmp_path, name, bc=False, init=init, solved=[True] * 2, **start))
    rows = {
        pathlib.Path(r["run"]).name: r for r in summarize_runs(runs, tmp_path / "s.json")["runs"]
    }
    assert rows["joint_b"]["paired_with_bc"]["bc_run"] == str(tmp_path / "bc_b")
    assert rows["joint_b"]["paired_with_bc"]["only_this"] == 1
    assert rows["joint_c"]["paired_with_bc"] is None


def test_runs_with_other_model_options_are_other_methods(tmp_path):
    """Seed 0, both arms with and without `policy_reads_target` from one start: each joint
    run is paired with, and its group compared with, the BC run of its own options; the
    option is named where it varies, and a config without it reads as its default."""
    on = {"policy_reads_target": True, "target_head": True, "mode_probs": [0.6, 0.25, 0.15]}
    off = {"policy_reads_target": False, "target_head": True, "mode_probs": [0.6, 0.25, 0.15]}
    runs = [
        _evaluated_run(tmp_path, "bc_off", success=0.5, seed=0, model=off, solved=[True, False]),
        _evaluated_run(tmp_path, "bc_on", success=0.5, seed=0, model=on, solved=[False, True]),
        _evaluated_run(
            tmp_path, "joint_off", success=0.5, seed=0, bc=False, model=off, solved=[True, True]
        ),
        _evaluated_run(
            tmp_path, "joint_on", success=1.0, seed=0, bc=False, model=on, solved=[True, True]
        ),
    ]
    table = summarize_runs(runs, tmp_path / "s.json")
    rows = {pathlib.Path(r["run"]).name: r for r in table["runs"]}
    assert rows["joint_on"]["model_options"] == "policy_reads_target=True"
    assert rows["bc_off"]["model_options"] == "policy_reads_target=False"
    assert rows["joint_on"]["paired_with_bc"]["bc_run"] == str(tmp_path / "bc_on")
    assert rows["joint_off"]["paired_with_bc"]["bc_run"] == str(tmp_path / "bc_off")
    versus = {(g["kind"], g["model_options"]): g["success_minus_bc"] for g in table["groups"]}
    assert len(table["groups"]) == 4
    assert versus[("wam (joint)", "policy_reads_target=True")] == pytest.approx(0.5)
    assert versus[("wam (joint)", "policy_reads_target=False")] == pytest.approx(0.0)
    assert "bc [policy_reads_target=True]" in format_table(table)
    assert "_model" not in json.loads((tmp_path / "s.json").read_text())["runs"][0]
    # A config without an option reads as its default: only mode_probs varies below.
    legacy = _evaluated_run(tmp_path, "bc_legacy", success=0.5, seed=1, model={})
    explicit = _evaluated_run(
        tmp_path, "bc_explicit", success=0.5, seed=2, model={"policy_reads_target": False}
    )
    other = _evaluated_run(
        tmp_path, "bc_other", success=0.5, seed=3, model={"mode_probs": [1, 0, 0]}
    )
    table = summarize_runs([legacy, explicit, other], tmp_path / "t.json")
    assert [r["model_options"] for r in table["runs"]] == [
        "mode_probs=(0.6, 0.25, 0.15)",
        "mode_probs=(0.6, 0.25, 0.15)",
        "mode_probs=(1, 0, 0)",
    ]
