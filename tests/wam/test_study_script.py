"""experiments/wam_babyai_study.sh and wam_babyai_ten_percent.sh: which runs they train for
several training seeds and what each starts from, with a fake `uv` that records every command
instead of running it."""

import os
import pathlib
import subprocess

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[2] / "experiments"
SCRIPT = EXPERIMENTS / "wam_babyai_study.sh"
TEN_PERCENT = EXPERIMENTS / "wam_babyai_ten_percent.sh"


def _study_commands(
    tmp_path: pathlib.Path, script: pathlib.Path = SCRIPT, args: tuple = ("smoke",), **env: str
) -> list[list[str]]:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    calls = tmp_path / "calls.log"
    fake = fake_bin / "uv"
    # One line per call, the arguments separated by tabs.
    fake.write_text(f'#!/usr/bin/env bash\n(IFS=$\'\\t\'; echo "$*") >> "{calls}"\n')
    fake.chmod(0o755)
    result = subprocess.run(
        ["bash", str(script), *args, str(tmp_path / "out")],
        env={**os.environ, "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}", **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [line.split("\t") for line in calls.read_text().splitlines()]


def _value(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def _option(command: list[str], key: str) -> str | None:
    values = [arg.split("=", 1)[1] for arg in command if arg.startswith(f"--config.{key}=")]
    return values[-1] if values else None


def test_each_seed_gets_its_runs_and_the_labeller_is_trained_once(tmp_path):
    commands = _study_commands(
        tmp_path, SEEDS="0 2", FRACTIONS="0.1", LATENT="0", OVERRIDES="--config.seed=9"
    )
    out = tmp_path / "out"
    trained = {
        pathlib.Path(_value(c, "--workdir")).name: c for c in commands if c[1:3] == ["wam", "train"]
    }
    assert sorted(trained) == [
        "bc_0.1",
        "bc_0.1_seed2",
        "bc_more_0.1",
        "bc_more_0.1_seed2",
        "bc_named_0.1",
        "bc_named_0.1_seed2",
        "labeller_0.1",
        "wam_0.1",
        "wam_0.1_seed2",
    ]
    for name in ("wam_0.1", "bc_0.1", "bc_named_0.1"):
        # The study's seed wins over one in OVERRIDES.
        assert _option(trained[name], "seed") == "0"
        assert _option(trained[f"{name}_seed2"], "seed") == "2"
    for tag in ("0.1", "0.1_seed2"):
        named_run = trained[f"bc_named_{tag}"]
        assert _value(named_run, "--config.wam.init_workdir") == str(out / f"bc_{tag}")
        assert _value(named_run, "--config.wam.named_actions") == str(out / "named_0.1.npz")
        # Its baseline at equal steps: BC continued from the same run on the real labels only.
        more = trained[f"bc_more_{tag}"]
        assert _value(more, "--config.wam.init_workdir") == str(out / f"bc_{tag}")
        assert _option(more, "wam.behaviour_cloning") == "True"
        assert "--config.wam.named_actions" not in more
    labels = [c for c in commands if c[1:3] == ["wam", "label"]]
    assert len(labels) == 1 and _value(labels[0], "--workdir") == str(out / "labeller_0.1")
    # Every policy run is evaluated, and the summary gathers them all (the labeller is a tool).
    evaluated = [_value(c, "--workdir") for c in commands if c[1:3] == ["wam", "eval"]]
    (summary,) = [c for c in commands if c[1:3] == ["wam", "summarize"]]
    policies = sorted(str(out / name) for name in trained if name != "labeller_0.1")
    assert sorted(evaluated) == sorted(summary[5:]) == policies


def test_one_seed_keeps_the_run_names_and_the_latent_route_follows_the_seeds(tmp_path):
    commands = _study_commands(tmp_path, FRACTIONS="1.0", SEEDS="1")
    names = [
        pathlib.Path(_value(c, "--workdir")).name for c in commands if c[1:3] == ["wam", "train"]
    ]
    assert names == [
        "wam_1.0_seed1",
        "bc_1.0_seed1",
        "latent_pretrain_seed1",
        "latent_align_seed1",
    ]
    align = [c for c in commands if "latent_align_seed1" in " ".join(c)][0]
    assert _value(align, "--config.wam.init_workdir").endswith("latent_pretrain_seed1")


def test_dagger_plays_each_100_percent_bc_run_and_continues_from_it(tmp_path):
    commands = _study_commands(tmp_path, FRACTIONS="0.1 1.0", SEEDS="0 1", LATENT="0", DAGGER="1")
    out = tmp_path / "out"
    builds = [c for c in commands if c[1:3] == ["wam", "data"] and "--actor" in c]
    assert [(_value(c, "--actor"), _value(c, "--out")) for c in builds] == [
        (str(out / "bc_1.0"), str(out / "on_policy_1.0")),
        (str(out / "bc_1.0_seed1"), str(out / "on_policy_1.0_seed1")),
    ]
    assert {_value(c, "--seeds") for c in builds} == {"8000:18000"}
    trained = {
        pathlib.Path(_value(c, "--workdir")).name: c for c in commands if c[1:3] == ["wam", "train"]
    }
    for tag in ("1.0", "1.0_seed1"):
        run = trained[f"bc_dagger_{tag}"]
        assert _value(run, "--config.wam.on_policy_data_dir") == str(out / f"on_policy_{tag}")
        assert _value(run, "--config.wam.init_workdir") == str(out / f"bc_{tag}")
        assert _option(run, "wam.label_fraction") == "1.0"
    assert not any(name.startswith("bc_dagger_0.1") for name in trained)  # 100% labels only
    # BC continued at both fractions: for the named-action runs at 10%, for DAgger at 100%.
    more = sorted(name for name in trained if name.startswith("bc_more"))
    assert more == ["bc_more_0.1", "bc_more_0.1_seed1", "bc_more_1.0", "bc_more_1.0_seed1"]
    (summary,) = [c for c in commands if c[1:3] == ["wam", "summarize"]]
    assert str(out / "bc_dagger_1.0_seed1") in summary


def test_the_ten_percent_chain_ends_with_the_joint_wam_and_bc_at_equal_steps(tmp_path):
    commands = _study_commands(tmp_path, script=TEN_PERCENT, args=(), SEEDS="0 3")
    out = tmp_path / "out"
    trained = {
        pathlib.Path(_value(c, "--workdir")).name: c for c in commands if c[1:3] == ["wam", "train"]
    }
    chain = {  # run -> (its start, its own steps, BC or not, reads the names)
        "bc_0.1_seed3": ("", "1200", "True", False),
        "bc_0.1_conv_ahead_seed3": ("bc_0.1_seed3", "400", "True", False),
        "named_0.1_conv_ahead_seed3": ("bc_0.1_seed3", "400", "True", True),
        "bc_0.1_conv_ahead_seed3_more800": ("bc_0.1_conv_ahead_seed3", "800", "True", False),
        "named_0.1_conv_ahead_seed3_more800": ("named_0.1_conv_ahead_seed3", "800", "True", True),
        "joint_0.1_seed3_from_route": ("named_0.1_conv_ahead_seed3_more800", "400", None, True),
        "bc_0.1_conv_ahead_seed3_more1200": (
            "bc_0.1_conv_ahead_seed3_more800",
            "400",
            "True",
            False,
        ),
        "joint_0.1_seed3_from_route_more800": ("joint_0.1_seed3_from_route", "800", None, True),
        "bc_0.1_conv_ahead_seed3_more2000": (
            "bc_0.1_conv_ahead_seed3_more1200",
            "800",
            "True",
            False,
        ),
    }
    for name, (start, steps, bc, named) in chain.items():
        run = trained[name]
        init = _value(run, "--config.wam.init_workdir") if start else ""
        assert init == (str(out / start) if start else ""), name
        assert _option(run, "wam.num_steps") == steps, name
        assert _option(run, "wam.behaviour_cloning") == bc, name
        assert ("--config.wam.named_actions" in run) == named, name
        assert _option(run, "seed") == "3" and _option(run, "wam.label_fraction") == "0.1"
        # Only the chain's first run leaves the two options out.
        assert (_option(run, "wam.model.grid_conv") == "False") == (name == "bc_0.1_seed3")
    assert "bc_0.1" in trained and "joint_0.1_from_route_more800" in trained  # seed 0: no suffix
    # The labeller and its names once for both seeds; the joint WAM and BC at two lengths
    # evaluated on 1000 test seeds and summarized.
    assert [c[3] for c in commands if c[1] == "wam" and c[2] == "label"] == ["--workdir"]
    evaluations = [c for c in commands if c[1:3] == ["wam", "eval"]]
    assert {_value(c, "--episodes") for c in evaluations} == {"1000"}
    evaluated = [_value(c, "--workdir") for c in evaluations]
    (summary,) = [c for c in commands if c[1:3] == ["wam", "summarize"]]
    assert evaluated == summary[5:]
    assert evaluated == [
        str(out / name)
        for name in (
            "joint_0.1_from_route",
            "bc_0.1_conv_ahead_more1200",
            "joint_0.1_from_route_more800",
            "bc_0.1_conv_ahead_more2000",
            "joint_0.1_seed3_from_route",
            "bc_0.1_conv_ahead_seed3_more1200",
            "joint_0.1_seed3_from_route_more800",
            "bc_0.1_conv_ahead_seed3_more2000",
        )
    ]


def test_the_ten_percent_chain_resumes_past_finished_runs_and_evaluations(tmp_path):
    out = tmp_path / "out"
    (out / "bc_0.1_seed3" / "checkpoints" / "1200").mkdir(parents=True)
    # Unfinished: only its step-200 checkpoint.
    (out / "bc_0.1_conv_ahead_seed3" / "checkpoints" / "200").mkdir(parents=True)
    joint = out / "joint_0.1_seed3_from_route_more800"
    done = joint / "eval" / "step_800_seeds90000-91000_t1"
    other = joint / "eval" / "step_800_seeds90000-90200_t1"  # 200 test seeds: not this one
    for directory in (done, other):
        directory.mkdir(parents=True)
        (directory / "metrics.json").write_text("{}")
    commands = _study_commands(tmp_path, script=TEN_PERCENT, args=(), SEEDS="3", EVAL_ROUTE="1")
    trained = [
        pathlib.Path(_value(c, "--workdir")).name for c in commands if c[1:3] == ["wam", "train"]
    ]
    assert "bc_0.1_seed3" not in trained and "bc_0.1_conv_ahead_seed3" in trained
    evaluated = [_value(c, "--workdir") for c in commands if c[1:3] == ["wam", "eval"]]
    assert len(evaluated) == 5 and str(joint) not in evaluated
    assert pathlib.Path(evaluated[0]).name == "bc_0.1_conv_ahead_seed3_more800"  # the route's pair
    (summary,) = [c for c in commands if c[1:3] == ["wam", "summarize"]]
    # The finished evaluation is named by its directory, in the chain's order.
    assert summary[5:] == [*evaluated[:4], str(done), evaluated[4]]


def test_the_ten_percent_chain_on_another_level_with_a_longer_labeller(tmp_path):
    commands = _study_commands(
        tmp_path,
        script=TEN_PERCENT,
        args=(),
        SEEDS="1",
        LEVEL="BabyAI-PickupLoc-v0",
        LABELLER_MORE="800",
    )
    out = tmp_path / "out"
    (data,) = [c for c in commands if c[1:4] == ["wam", "data", "babyai"]]
    assert _value(data, "--level") == "BabyAI-PickupLoc-v0"
    trained = {
        pathlib.Path(_value(c, "--workdir")).name: c for c in commands if c[1:3] == ["wam", "train"]
    }
    # Every run plays the level it was trained on when it is evaluated.
    assert {_value(c, "--config.level") for c in trained.values()} == {"BabyAI-PickupLoc-v0"}
    (tokenizer,) = [c for c in commands if c[1:4] == ["genie", "train", "tokenizer"]]
    assert _value(tokenizer, "--config.level") == "BabyAI-PickupLoc-v0"
    assert _option(trained["labeller_0.1"], "wam.num_steps") == "600"
    longer = trained["labeller_0.1_more800"]
    assert _value(longer, "--config.wam.init_workdir") == str(out / "labeller_0.1")
    assert _option(longer, "wam.num_steps") == "800"
    assert _value(longer, "--config") == "experiments/configs/babyai.py:smoke_labeller"
    # The names come from the longer labeller, under a name of their own, and every run on
    # names reads them.
    (label,) = [c for c in commands if c[1:3] == ["wam", "label"]]
    assert _value(label, "--workdir") == str(out / "labeller_0.1_more800")
    names = str(out / "named_0.1_more800.npz")
    assert _value(label, "--out") == names
    readers = [c for c in trained.values() if "--config.wam.named_actions" in c]
    assert len(readers) == 4
    assert {_value(c, "--config.wam.named_actions") for c in readers} == {names}


def test_the_pickup_chain_pairs_the_joint_wam_and_bc_from_one_bc_checkpoint(tmp_path):
    commands = _study_commands(tmp_path, script=EXPERIMENTS / "wam_babyai_pickup.sh", args=())
    out = tmp_path / "out"
    # The tokenizer reads GoToLocal frames, every WAM run PickupLoc's.
    data = {_value(c, "--out"): _value(c, "--level") for c in commands if c[1:3] == ["wam", "data"]}
    assert data == {
        str(out / "data"): "BabyAI-PickupLoc-v0",
        str(out / "tokenizer_data"): "BabyAI-GoToLocal-v0",
    }
    (tokenizer,) = [c for c in commands if c[1:4] == ["genie", "train", "tokenizer"]]
    assert _value(tokenizer, "--config.data_dir") == str(out / "tokenizer_data")
    trained = {
        pathlib.Path(_value(c, "--workdir")).name: c for c in commands if c[1:3] == ["wam", "train"]
    }
    assert {_value(c, "--config.level") for c in trained.values()} == {"BabyAI-PickupLoc-v0"}
    assert {_value(c, "--config.tokenizer_workdir") for c in trained.values()} == {
        str(out / "tokenizer")
    }
    (label,) = [c for c in commands if c[1:3] == ["wam", "label"]]
    assert _value(label, "--workdir") == str(out / "labeller_0.1_more800")
    names = _value(label, "--out")
    chain = {  # run -> (its start, its own steps, BC or not, reads the names)
        "bc_0.1_prt_seed2": ("", "1200", "True", False),
        "joint_0.1_prt_seed2_from_bc": ("bc_0.1_prt_seed2", "800", None, True),
        "bc_0.1_prt_seed2_more800": ("bc_0.1_prt_seed2", "800", "True", False),
    }
    for name, (start, steps, bc, named) in chain.items():
        run = trained[name]
        assert _option(run, "seed") == "2" and _option(run, "wam.label_fraction") == "0.1"
        assert _option(run, "wam.model.policy_reads_target") == "True", name
        assert _option(run, "wam.num_steps") == steps, name
        assert _option(run, "wam.behaviour_cloning") == bc, name
        if start:
            assert _value(run, "--config.wam.init_workdir") == str(out / start), name
            assert _option(run, "wam.init_step") == "1200", name
        else:
            assert "--config.wam.init_workdir" not in run, name
        assert (_value(run, "--config.wam.named_actions") if named else None) == (
            names if named else None
        ), name
    assert {"bc_0.1_prt", "bc_0.1_prt_seed1", "joint_0.1_prt_from_bc"} <= set(trained)
    # Both arms of each seed at 2000 steps, on 500 test seeds at T 1.0, then summarized.
    evaluations = [c for c in commands if c[1:3] == ["wam", "eval"]]
    assert {(_value(c, "--episodes"), _value(c, "--action-temperature")) for c in evaluations} == {
        ("500", "1.0")
    }
    evaluated = [_value(c, "--workdir") for c in evaluations]
    (summary,) = [c for c in commands if c[1:3] == ["wam", "summarize"]]
    assert evaluated == summary[5:]
    assert [pathlib.Path(run).name for run in evaluated] == [
        f"{arm}{s}{tail}"
        for s in ("", "_seed1", "_seed2")
        for arm, tail in (("joint_0.1_prt", "_from_bc"), ("bc_0.1_prt", "_more800"))
    ]
