"""`wam summarize`: evaluated runs gathered into one table, and runs that differ only in their
training seed gathered into groups with the mean and spread of their success.

One run's success at a small label fraction can move by tens of points with the training seed
(RESULTS.md, "A full-view expert"), so a method is compared with behaviour cloning on the means
of its seed group: `success_minus_bc` is the group's mean minus the mean of the behaviour-cloning
group with the same labels and training steps, evaluated the same way (temperature, action
source, test seeds). A run's training steps count the steps of the runs it started from
(`start.json`, `wam_jax/run_start.py`): the VPT route trained 400 steps from a 1200-step BC run
is compared with BC at 1600 steps, not at 1200.

A run is also paired with the BC run of its training seed, label fraction and training steps,
evaluated the same way (`paired_with_bc`): on the test seeds both played (`episodes.jsonl`),
how many only the run solved, how many only BC solved, and the standard error of the
difference in success over those seeds. This error covers the test seeds and the sampled
actions, not the training seed: it says whether one pair of runs differs, the seed groups say
whether a method does.

Runs whose WAM options differ (`config.wam.model`, e.g. `policy_reads_target`) are different
methods: each row names the options that vary among the runs summarized together
(`model_options`), and neither the groups nor the pairing with BC cross them.
"""

import dataclasses
import json
import math
import pathlib
import statistics

from wam_jax.config import WAMConfig
from wam_jax.run_start import steps_before


class StudyTableError(ValueError):
    """A workdir that cannot enter the table (not evaluated, or no training seed on record)."""


def run_kind(meta: dict) -> str:
    """`bc`, `wam (joint)`, ...; `+ named` where the run read a labeller's named actions,
    `+ on-policy` where it read a policy's expert-labelled episodes (DAgger)."""
    kind = "bc" if meta["behaviour_cloning"] else f"wam ({meta['stage']})"
    if meta.get("named_actions"):
        kind += " + named"
    if meta.get("on_policy_data_dir"):
        kind += " + on-policy"
    return kind


def _lineage(workdir: pathlib.Path, meta: dict) -> tuple[int, str, int | None, dict]:
    """The run's training seed, the run whose weights it started from ("": none), the
    training steps behind its first step (None: not on record) and its WAM options."""
    config_path = workdir / "config.json"
    if not config_path.is_file():
        raise StudyTableError(f"{workdir}: no config.json, so no training seed on record")
    config = json.loads(config_path.read_text())
    # Evaluations written before the seed entered their metadata: the run's resolved config.
    seed = meta.get("train_seed", config["seed"])
    init_workdir = str(config.get("wam", {}).get("init_workdir", ""))
    return int(seed), init_workdir, steps_before(workdir, config), _model_options(config)


def _model_options(config: dict) -> dict:
    """Every `WAMConfig` field of the run; a field its config.json lacks (written before the
    field existed) has the field's default, the behaviour of the code it was trained with."""
    recorded = config.get("wam", {}).get("model", {})
    options = {}
    for field in dataclasses.fields(WAMConfig):
        value = recorded.get(field.name, field.default)
        options[field.name] = tuple(value) if isinstance(value, list) else value
    return options


def _evaluation_path(run: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """(workdir, metrics file) for a workdir (its newest evaluation, `W/eval/metrics.json`) or
    for one of its evaluation directories (`W/eval/step_N_...`: that evaluation)."""
    if run.parent.name == "eval" and (run / "metrics.json").is_file():
        return run.parent.parent, run / "metrics.json"
    path = run / "eval" / "metrics.json"
    if path.is_file():
        return run, path
    if run.parent.name == "eval":
        raise StudyTableError(
            f"{run / 'metrics.json'} not found: {run} is not an evaluation of "
            f"{run.parent.parent} (`wam eval` writes W/eval/step_N_...)"
        )
    raise StudyTableError(f"{path} not found; run `wam eval` on {run}")


def _episodes_file(workdir: pathlib.Path, path: pathlib.Path, meta: dict) -> pathlib.Path | None:
    """The evaluation's `episodes.jsonl` (None: an evaluation written before it existed). The
    newest-evaluation copy `W/eval/metrics.json` names its directory in `meta["outputs"]`."""
    directory = path.parent
    if directory == workdir / "eval":
        outputs = meta.get("outputs") or []
        if not outputs:
            return None
        directory = workdir / "eval" / pathlib.Path(outputs[0]).parent.name
    episodes = directory / "episodes.jsonl"
    return episodes if episodes.is_file() else None


def run_row(run: str | pathlib.Path) -> dict:
    """One row from a workdir's newest evaluation, or from the evaluation directory given."""
    workdir, path = _evaluation_path(pathlib.Path(run))
    metrics = json.loads(path.read_text())
    meta = metrics["meta"]
    psnr = metrics.get("video_psnr_by_step") or []
    seed, init_workdir, before, model = _lineage(workdir, meta)
    episodes = _episodes_file(workdir, path, meta)
    return {
        "run": str(workdir),
        "evaluation": str(path),
        "episodes_file": None if episodes is None else str(episodes),
        "kind": run_kind(meta),
        "label_fraction": meta["label_fraction"],
        "train_seed": seed,
        # A run started from another's weights draws on both runs' seeds.
        "init_workdir": init_workdir,
        "named_actions": meta.get("named_actions", ""),
        # All WAM options (`_model`, dropped from the written table) and, set by
        # `name_model_options`, those that vary among the runs summarized together.
        "_model": model,
        "model_options": "",
        "success_rate": metrics["success_rate"],
        "mean_episode_length": metrics["mean_episode_length"],
        "video_psnr_first_step": psnr[0] if psnr else None,
        "random_policy_success_rate": metrics["random_policy"]["success_rate"],
        # Older evaluations have no budgets.
        "success_within": metrics.get("success_within"),
        "random_policy_success_within": metrics["random_policy"].get("success_within"),
        "episodes": metrics["episodes"],
        "eval_seeds": meta["seeds"],
        "action_temperature": meta.get("action_temperature", 0.0),
        "action_source": meta.get("action_source", "policy"),
        "step": meta["step"],
        # The evaluated step plus the steps behind the run's start (None: not on record, a
        # run from another's weights trained before `start.json`).
        "training_steps": None if before is None else before + meta["step"],
    }


def name_model_options(rows: list[dict]) -> None:
    """Sets each row's `model_options` to `name=value, ...` over the WAM options that differ
    among `rows` ("" where none do)."""
    varying = (
        [name for name in rows[0]["_model"] if len({str(row["_model"][name]) for row in rows}) > 1]
        if rows
        else []
    )
    for row in rows:
        row["model_options"] = ", ".join(f"{name}={row['_model'][name]}" for name in varying)


def _method(row: dict) -> str:
    """The kind and the varying options, as the table prints them."""
    options = row["model_options"]
    return row["kind"] + (f" [{options}]" if options else "")


def _evaluation_key(row: dict) -> tuple:
    """What must match for two runs' success rates to be compared."""
    return (row["action_temperature"], row["action_source"], tuple(row["eval_seeds"]))


def seed_groups(rows: list[dict]) -> list[dict]:
    """Runs of one kind, label fraction and training steps, evaluated the same way, in one
    group each (first appearance order; a run started from another's weights counts as a draw
    of its own), with the mean, sample standard deviation (None for one run), min and max of
    their success, and the mean's difference from behaviour cloning's group at the same
    training steps (None where there is none, or the steps are not on record)."""
    members: dict[tuple, list[dict]] = {}
    for row in rows:
        key = (
            row["kind"],
            row["model_options"],
            row["label_fraction"],
            row["training_steps"],
            *_evaluation_key(row),
        )
        members.setdefault(key, []).append(row)
    groups = []
    for (kind, options, fraction, steps, *_), group_rows in members.items():
        lineages = [(row["init_workdir"], row["train_seed"]) for row in group_rows]
        if len(set(lineages)) != len(lineages):
            raise StudyTableError(
                f"{_method(group_rows[0])} at {fraction} labels: two runs with the same "
                "training seed and start "
                f"({', '.join(row['run'] for row in group_rows)}); one row per seed"
            )
        success = [row["success_rate"] for row in group_rows]
        groups.append(
            {
                "kind": kind,
                "model_options": options,
                "label_fraction": fraction,
                "training_steps": steps,
                "runs": len(group_rows),
                "members": [row["run"] for row in group_rows],
                "success_mean": statistics.fmean(success),
                "success_std": statistics.stdev(success) if len(success) > 1 else None,
                "success_min": min(success),
                "success_max": max(success),
                "action_temperature": group_rows[0]["action_temperature"],
                "action_source": group_rows[0]["action_source"],
                "eval_seeds": group_rows[0]["eval_seeds"],
                "success_minus_bc": None,
            }
        )
    for group in groups:
        bc = [
            other
            for other in groups
            if other["kind"] == "bc"
            and other["model_options"] == group["model_options"]
            and other["label_fraction"] == group["label_fraction"]
            and other["training_steps"] is not None
            and other["training_steps"] == group["training_steps"]
            and _evaluation_key(other) == _evaluation_key(group)
        ]
        if bc and group["kind"] != "bc":
            group["success_minus_bc"] = group["success_mean"] - bc[0]["success_mean"]
    return groups


def _successes(episodes_file: str) -> dict[int, bool]:
    """{test seed: solved} from an evaluation's `episodes.jsonl`."""
    with open(episodes_file) as lines:
        try:
            return {
                int(record["seed"]): bool(record["success"]) for record in map(json.loads, lines)
            }
        except (ValueError, KeyError, TypeError) as error:
            raise StudyTableError(
                f"{episodes_file}: not one episode record (seed, success) a line ({error!r}); "
                "run `wam eval` again"
            ) from error


def paired_difference(run_by_seed: dict[int, bool], bc_by_seed: dict[int, bool]) -> dict | None:
    """The run against BC on the seeds both played: the counts only one of them solved, the
    difference in success and its standard error (None: fewer than two common seeds)."""
    seeds = sorted(run_by_seed.keys() & bc_by_seed.keys())
    if len(seeds) < 2:
        return None
    difference_S = [int(run_by_seed[s]) - int(bc_by_seed[s]) for s in seeds]
    return {
        "episodes": len(seeds),
        "only_this": difference_S.count(1),
        "only_bc": difference_S.count(-1),
        "difference": statistics.fmean(difference_S),
        "difference_se": statistics.stdev(difference_S) / math.sqrt(len(seeds)),
    }


def pair_with_bc(rows: list[dict]) -> None:
    """Sets `paired_with_bc` on every row that is not BC: the BC row of the same WAM options,
    training seed, label fraction, training steps (on record) and evaluation, with both evaluations'
    episodes on file; where several match, the one started from the same run (the two arms
    of one start); None where there is none or no single one."""
    outcomes: dict[str, dict[int, bool]] = {}
    for row in rows:
        row["paired_with_bc"] = None
        if row["kind"] == "bc" or row["training_steps"] is None or not row["episodes_file"]:
            continue
        candidates = [
            other
            for other in rows
            if other["kind"] == "bc"
            and other["episodes_file"]
            and other["model_options"] == row["model_options"]
            and (other["train_seed"], other["label_fraction"], other["training_steps"])
            == (row["train_seed"], row["label_fraction"], row["training_steps"])
            and _evaluation_key(other) == _evaluation_key(row)
        ]
        if len(candidates) > 1:
            candidates = [c for c in candidates if c["init_workdir"] == row["init_workdir"]]
        if len(candidates) != 1:
            continue
        bc = candidates[0]
        for path in (row["episodes_file"], bc["episodes_file"]):
            if path not in outcomes:  # a BC run paired with several runs is read once
                outcomes[path] = _successes(path)
        paired = paired_difference(outcomes[row["episodes_file"]], outcomes[bc["episodes_file"]])
        if paired is not None:
            row["paired_with_bc"] = {"bc_run": bc["run"], **paired}


def summarize_runs(workdirs: list[str | pathlib.Path], out: str | pathlib.Path) -> dict:
    """Writes `{"runs": [...], "groups": [...]}` to `out` and returns it."""
    rows = [run_row(workdir) for workdir in workdirs]
    name_model_options(rows)
    pair_with_bc(rows)
    groups = seed_groups(rows)
    for row in rows:
        del row["_model"]
    table = {"runs": rows, "groups": groups}
    pathlib.Path(out).write_text(json.dumps(table, indent=2) + "\n")
    return table


def format_table(table: dict) -> str:
    lines = [
        f"{_method(row):<20} labels {row['label_fraction']:<5} seed {row['train_seed']:<3} "
        f"steps {_steps(row['training_steps']):<6} "
        f"success {row['success_rate']:.3f} length {row['mean_episode_length']:.1f}  {row['run']}"
        + (f" (from {row['init_workdir']})" if row["init_workdir"] else "")
        + _paired_text(row.get("paired_with_bc"))
        for row in table["runs"]
    ]
    for group in table["groups"]:
        spread = "" if group["success_std"] is None else f" ± {group['success_std']:.3f}"
        versus = group["success_minus_bc"]
        lines.append(
            f"{_method(group):<20} labels {group['label_fraction']:<5} "
            f"steps {_steps(group['training_steps']):<6} {group['runs']} run(s): "
            f"success {group['success_mean']:.3f}{spread} "
            f"(min {group['success_min']:.3f}, max {group['success_max']:.3f})"
            + ("" if versus is None else f", {versus:+.3f} against bc at the same steps")
        )
    return "\n".join(lines)


def _paired_text(paired: dict | None) -> str:
    if paired is None:
        return ""
    return (
        f"\n    paired with {paired['bc_run']} on {paired['episodes']} seeds: "
        f"{paired['difference']:+.3f} (SE {paired['difference_se']:.3f}; solved by this run "
        f"only {paired['only_this']}, by bc only {paired['only_bc']})"
    )


def _steps(steps: int | None) -> str:
    return "?" if steps is None else str(steps)
