"""The WAM as a policy in BabyAI: batched closed-loop episodes on held-out seeds.

Up to `batch_size` episodes are played side by side, one `WAMAgent.act` call per environment
step; an episode that ends makes room for the next waiting one, and once none waits the batch
shrinks, padded to a power of two (a handful of compiled sizes). Each episode's sampled
actions and imagined frames come from its own key, folded from (sample seed, env seed, step),
so a draw does not depend on which episodes share its batch.
Reported per run:

  success_rate         episodes whose mission was completed (reward > 0) before the env's
                       own step limit
  mean_episode_length  environment steps per episode (successful or not)
  video_psnr_by_step   mean PSNR (dB, pixels in [0, 1]) of the imagined next frame against
                       the real one, by step index k (frame k+1), over the episodes still
                       running at k; with `episodes_by_step` the count behind each entry
  success_within       success within a step budget ({"8": rate, "16": ..., "32": ...}):
                       the expert bot needs about 5 steps a GoToLocal episode, so random
                       play's wins, which come from wandering until the env's limit, mostly
                       fall outside the small budgets while a policy that heads for the
                       target keeps its own
  random_policy        the same seeds played with uniformly random actions (the mean of
                       several draws), for reference
  expert_agreement     share of the WAM's actions equal to the expert's choice from the same
                       state (the states the WAM reached itself, not the bot's; the `full_view`
                       expert, `babyai_env.expert_action`, since 2026-12-06), with
                       `agreeing_episodes` (episodes with no other choice) and
                       `first_disagreement_mean` (mean action index of the first other
                       choice, over the episodes that have one): where closed-loop episodes
                       leave the demonstrations' path. Several actions can be as good as the
                       bot's (a turn either way), so this is a floor on good choices.
  grounding            (WAMs with a target head) where the head points in the last frame
                       before each action: `target_on_named` (share of steps it points at a
                       cell of an object the mission names), the same over failed episodes'
                       steps, and `stalled_on_pointed` (of the failed episodes' steps that
                       changed nothing while the agent faced an object, the share where the
                       head pointed at that object: high means the policy takes the blocker
                       for its target, low that it knows the target and cannot get round)
  shortest_path_share  (GoTo missions) share of the WAM's actions that lie on a shortest path
                       to the goal from the state they were taken in (`shortest_path.py`:
                       every equally short route counts, so unlike `expert_agreement` its
                       complement is an error rate), also over won and failed episodes'
                       actions (`_won`, `_failed`), and `excess_actions_won`: the mean number
                       of actions a won episode took beyond the fewest possible from its start
  forward_into_blocker_share  of the actions taken while the agent faced a blocker (a wall or
                       an object the mission does not name, `facing_blocker_steps` of them),
                       the share that were FORWARD: a move that changes nothing and that the
                       expert never makes (it turns, or picks the object up)
  wrong_pickup_episodes  share of the episodes that picked up an object the mission does
                       not name (PICKUP while facing one, and the frame changed): in a Pickup
                       mission such an episode is lost, for the policy never drops it
  ahead_accuracy       (WAMs with an ahead head) share of the steps where the head's class
                       for the cell in front of the agent was the simulator's, in the states
                       the policy reached; `ahead_named_at_wrong_pickups`: of the wrong
                       pickups, the share where the head took the object for the named one
                       (high: the policy's features mistake the object; low: they tell it
                       apart and the action does not follow them)
"""

import contextlib
import io

import jax
import numpy as np

from wam_jax.agent import WAMAgent
from wam_jax.data.babyai_env import (
    AHEAD_NAMED,
    AHEAD_OBJECT,
    BLOCKING_CLASSES,
    FORWARD,
    NUM_ACTIONS,
    PICKUP,
    ahead_class,
    expert_action,
    make_env,
    named_object_cells,
    tile_size,
)
from wam_jax.data.pipeline import cells_to_tokens
from wam_jax.shortest_path import fewest_actions, on_shortest_path


def _psnr(target_HWC: np.ndarray, prediction_HWC: np.ndarray) -> float:
    mse = float(np.mean((target_HWC.astype(np.float64) - prediction_HWC) ** 2))
    return float(10.0 * np.log10(1.0 / max(mse, 1e-10)))


class _Episode:
    def __init__(self, level: str, seed: int, frame_size: int, render: bool = True):
        self.env = make_env(level)
        self.tile = tile_size(self.env, level, frame_size)
        with contextlib.redirect_stdout(io.StringIO()):  # layout sampling chatter
            obs, _ = self.env.reset(seed=int(seed))
        self.seed = int(seed)
        self.mission = str(obs["mission"])
        self.render = render  # random play needs no frames
        self.frames = [self._render()] if render else []
        # uint8 [G, G] per frame (with `render`): the cells of the objects the mission names,
        # as the data builder stores them, so a played episode can be written as data.
        self.targets = [named_object_cells(self.env.unwrapped)] if render else []
        self.aheads = [ahead_class(self.env.unwrapped)] if render else []  # the same, per frame
        self.actions: list[int] = []
        self.expert_actions: list[int | None] = []  # the bot's choice before each action
        # GoTo missions (None otherwise): the fewest actions that win from the start, and per
        # action whether it lay on a shortest path (filled by `play_wam`).
        self.fewest_actions = fewest_actions(self.env.unwrapped) if render else None
        self.on_shortest_path: list[bool | None] = []
        self.facing_blocker: list[bool] = []  # before each action (filled by `play_wam`)
        self.imagined: list[np.ndarray] = []
        # Before each action, with a target head: does it point at a named object's cell, and
        # at the cell the agent faces (which holds an object or not)?
        self.target_on_named: list[bool] = []
        self.target_on_faced: list[bool] = []
        self.facing_object: list[bool] = []
        self.ahead_predicted: list[int] = []  # with an ahead head: its class, before each action
        self.done = False
        self.success = False

    def _render(self) -> np.ndarray:
        return self.env.unwrapped.get_frame(highlight=False, tile_size=self.tile)

    def step(self, action: int) -> None:
        _, reward, terminated, truncated, _ = self.env.step(int(action))
        self.actions.append(int(action))
        if self.render:
            self.frames.append(self._render())
            self.targets.append(named_object_cells(self.env.unwrapped))
            self.aheads.append(ahead_class(self.env.unwrapped))
        self.done = terminated or truncated
        self.success = self.done and reward > 0

    def note_target(self, token: int, patch_size: int) -> None:
        """Records where the target head points (`token` of the current frame)."""
        world = self.env.unwrapped
        frame_size = self.tile * world.width
        named_N = cells_to_tokens(named_object_cells(world)[None], frame_size, patch_size)[0]
        faced_GG = np.zeros((world.height, world.width), np.uint8)
        x, y = (int(v) for v in world.front_pos)
        if 0 <= x < world.width and 0 <= y < world.height:
            faced_GG[y, x] = 1
            cell = world.grid.get(x, y)
            self.facing_object.append(cell is not None and cell.can_pickup())
        else:
            self.facing_object.append(False)
        faced_N = cells_to_tokens(faced_GG[None], frame_size, patch_size)[0]
        self.target_on_named.append(bool(named_N[token]))
        self.target_on_faced.append(bool(faced_N[token]))

    def stalled(self) -> list[bool]:
        """Per action: it left the frame as it was (a move into a wall or an object)."""
        return [bool(np.array_equal(a, b)) for a, b in zip(self.frames[:-1], self.frames[1:])]


STEP_BUDGETS = (8, 16, 32)


def first_disagreement(episode: "_Episode") -> int | None:
    """Index of the episode's first action that is not the expert's choice (None if none;
    states where the expert could not plan are skipped)."""
    for index, (action, expert) in enumerate(zip(episode.actions, episode.expert_actions)):
        if expert is not None and action != expert:
            return index
    return None


def expert_agreement(episodes: list["_Episode"]) -> dict[str, float | None]:
    """How closely played episodes follow the expert bot (module docstring)."""
    pairs = [
        (action, expert)
        for ep in episodes
        for action, expert in zip(ep.actions, ep.expert_actions)
        if expert is not None
    ]
    firsts = [first_disagreement(ep) for ep in episodes]
    departed = [index for index in firsts if index is not None]
    return {
        "expert_agreement": float(np.mean([a == e for a, e in pairs])) if pairs else None,
        "agreeing_episodes": float(np.mean([index is None for index in firsts])),
        "first_disagreement_mean": float(np.mean(departed)) if departed else None,
    }


def grounding(episodes: list["_Episode"]) -> dict[str, float | None]:
    """Where the target head pointed (module docstring); empty without a target head."""
    if not any(ep.target_on_named for ep in episodes):
        return {}
    failed = [ep for ep in episodes if not ep.success]

    def share(values: list[bool]) -> float | None:
        return float(np.mean(values)) if values else None

    stalled_facing = [
        on_faced
        for ep in failed
        for on_faced, facing, stalled in zip(ep.target_on_faced, ep.facing_object, ep.stalled())
        if facing and stalled
    ]
    return {
        "target_on_named": share([v for ep in episodes for v in ep.target_on_named]),
        "target_on_named_failed": share([v for ep in failed for v in ep.target_on_named]),
        "stalled_on_pointed": share(stalled_facing),
        "stalled_facing_steps": len(stalled_facing),
    }


def shortest_paths(episodes: list["_Episode"]) -> dict[str, float | None]:
    """How many of the played actions lay on a shortest path (module docstring); empty when no
    action was scored (not a GoTo level)."""
    if not any(v is not None for ep in episodes for v in ep.on_shortest_path):
        return {}

    def share(group: list["_Episode"]) -> float | None:
        scored = [v for ep in group for v in ep.on_shortest_path if v is not None]
        return float(np.mean(scored)) if scored else None

    won = [ep for ep in episodes if ep.success and ep.fewest_actions is not None]
    return {
        "shortest_path_share": share(episodes),
        "shortest_path_share_won": share([ep for ep in episodes if ep.success]),
        "shortest_path_share_failed": share([ep for ep in episodes if not ep.success]),
        "excess_actions_won": (
            float(np.mean([len(ep.actions) - ep.fewest_actions for ep in won])) if won else None
        ),
    }


def blocker_forwards(episodes: list["_Episode"]) -> dict[str, float | int | None]:
    """How often the agent walked into a blocker it faced (module docstring)."""
    faced = [
        action == FORWARD
        for ep in episodes
        for action, facing in zip(ep.actions, ep.facing_blocker)
        if facing
    ]
    return {
        "forward_into_blocker_share": float(np.mean(faced)) if faced else None,
        "facing_blocker_steps": len(faced),
    }


def wrong_pickups(episode: "_Episode") -> list[int]:
    """Indices of the episode's actions that picked up an object the mission does not name."""
    if not episode.render:
        return []
    changed = [not stalled for stalled in episode.stalled()]
    return [
        index
        for index, (action, ahead, moved) in enumerate(
            zip(episode.actions, episode.aheads, changed)
        )
        if action == PICKUP and ahead == AHEAD_OBJECT and moved
    ]


def pickups(episodes: list["_Episode"]) -> dict[str, float | None]:
    """Wrong pickups, and what the ahead head said in the states reached (module docstring)."""
    rendered = [ep for ep in episodes if ep.render]
    if not rendered:
        return {}
    wrong = {id(ep): wrong_pickups(ep) for ep in rendered}
    metrics: dict[str, float | None] = {
        "wrong_pickup_episodes": float(np.mean([bool(wrong[id(ep)]) for ep in rendered]))
    }
    if not any(ep.ahead_predicted for ep in rendered):
        return metrics
    pairs = [pair for ep in rendered for pair in zip(ep.ahead_predicted, ep.aheads)]
    said = [ep.ahead_predicted[index] for ep in rendered for index in wrong[id(ep)]]
    metrics["ahead_accuracy"] = float(np.mean([p == t for p, t in pairs]))
    metrics["ahead_named_at_wrong_pickups"] = (
        float(np.mean([c == AHEAD_NAMED for c in said])) if said else None
    )
    return metrics


def episode_record(episode: "_Episode") -> dict:
    """One played episode as a JSON-ready row (`wam eval` writes one per line)."""
    record = {
        "seed": episode.seed,
        "mission": episode.mission,
        "success": bool(episode.success),
        "length": len(episode.actions),
        "actions": list(episode.actions),
        "expert_actions": list(episode.expert_actions),
        "first_disagreement": first_disagreement(episode),
    }
    if episode.fewest_actions is not None:
        record["fewest_actions"] = episode.fewest_actions
        record["on_shortest_path"] = list(episode.on_shortest_path)
    if episode.render:
        record["stalled"] = episode.stalled()
        record["facing_blocker"] = list(episode.facing_blocker)
        record["ahead"] = [int(c) for c in episode.aheads[: len(episode.actions)]]
        record["wrong_pickups"] = wrong_pickups(episode)
    if episode.ahead_predicted:
        record["ahead_predicted"] = list(episode.ahead_predicted)
    if episode.target_on_named:
        record["target_on_named"] = list(episode.target_on_named)
        record["target_on_faced"] = list(episode.target_on_faced)
        record["facing_object"] = list(episode.facing_object)
    return record


def success_within(episodes: list["_Episode"]) -> dict[str, float]:
    """Share of `episodes` won within each of STEP_BUDGETS environment steps (an episode ends
    at its success, so that is a win with at most that many actions)."""
    return {
        str(budget): float(np.mean([ep.success and len(ep.actions) <= budget for ep in episodes]))
        for budget in STEP_BUDGETS
    }


def _cut(episodes: list["_Episode"], max_steps: int | None) -> None:
    """Ends every unfinished episode that has taken `max_steps` actions, as a loss."""
    if max_steps is None:
        return
    for ep in episodes:
        if not ep.done and len(ep.actions) >= max_steps:
            ep.done = True


def play_random(
    level: str,
    seeds: list[int],
    frame_size: int,
    seed: int = 0,
    repeats: int = 5,
    max_steps: int | None = None,
) -> dict:
    """Uniformly random actions on `seeds`, `repeats` times with different draws: random play
    already solves a good share of GoToLocal in the env's step limit, and one draw of 50
    episodes swings by about 10 points, so the mean over draws is the reference. `max_steps`
    cuts every episode as `play_wam` does."""
    rates, lengths, within = [], [], []
    for r in range(repeats):
        episodes = [_Episode(level, s, frame_size, render=False) for s in seeds]
        for env_seed, ep in zip(seeds, episodes):
            # A draw per episode: cutting one episode short leaves the others' actions alone.
            rng = np.random.default_rng([seed, r, env_seed])
            while not ep.done:
                ep.step(rng.integers(NUM_ACTIONS))
                _cut([ep], max_steps)
            ep.env.close()
        rates.append(float(np.mean([ep.success for ep in episodes])))
        lengths.append(float(np.mean([len(ep.actions) for ep in episodes])))
        within.append(success_within(episodes))
    return {
        "success_rate": float(np.mean(rates)),
        "mean_episode_length": float(np.mean(lengths)),
        "success_within": {k: float(np.mean([w[k] for w in within])) for k in within[0]},
        "success_rate_by_draw": rates,
    }


@jax.jit
def _episode_keys(sample_key: jax.Array, env_seeds_B: jax.Array, steps_B: jax.Array) -> jax.Array:
    """Keys [B]: episode b's key at its step, from (sample seed, env seed, step) alone."""

    def key(env_seed, step):
        return jax.random.fold_in(jax.random.fold_in(sample_key, env_seed), step)

    return jax.vmap(key)(env_seeds_B, steps_B)


def _padded_size(running: int, largest: int) -> int:
    """The batch for `running` episodes: the next power of two, at most `largest`, so a
    shrinking batch compiles a few sizes only."""
    return min(largest, 1 << (running - 1).bit_length())


# Episodes a `play_wam` batch holds at most: at the smoke sizes a batch costs about 12 MB of
# host memory an episode (1000 side by side took 12 GiB), and a CPU's throughput per episode
# no longer grows at this size.
BATCH_SIZE = 256


def play_wam(
    agent: WAMAgent,
    level: str,
    seeds: list[int],
    *,
    imagine: bool = True,
    seed: int = 0,
    max_steps: int | None = None,
    batch_size: int = BATCH_SIZE,
) -> tuple[dict, list]:
    """Closed-loop episodes on `seeds`; returns (metrics, episodes) (episodes for the GIF).

    `seed`: the sample seed; with an env seed and a step it fixes an episode's draws (module
    docstring), whatever `batch_size` (episodes played side by side at most). `max_steps`: an
    episode not won after that many actions ends as a loss (None: the level's own limit), so
    `success_within` for budgets up to it is unchanged and costs less to measure."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be 1 or more episodes, got {batch_size}")
    size = agent.config.frame_size
    patch_size = agent.system.tokenizer_config.patch_size
    episodes = [_Episode(level, s, size) for s in seeds]
    words = agent.encode_missions([ep.mission for ep in episodes])
    sample_key = jax.random.key(seed)
    psnr_sums: list[float] = []
    psnr_counts: list[int] = []
    largest = min(batch_size, len(episodes))
    waiting = list(range(len(episodes)))[::-1]  # popped from the end: in seed order
    running: list[int] = []
    while True:
        running = [i for i in running if not episodes[i].done]
        while waiting and len(running) < largest:
            running.append(waiting.pop())
        if not running:
            break
        # Padding rows repeat the first running episode; their outputs are dropped.
        rows = running + running[:1] * (_padded_size(len(running), largest) - len(running))
        keys_B = _episode_keys(
            sample_key,
            np.asarray([episodes[i].seed for i in rows], np.uint32),
            np.asarray([len(episodes[i].actions) for i in rows], np.uint32),
        )
        out = agent.act(
            words[rows],
            [np.stack(episodes[i].frames) for i in rows],
            [np.asarray(episodes[i].actions, np.int32) for i in rows],
            keys_B,
            imagine=imagine,
        )
        for b, i in enumerate(running):
            ep = episodes[i]
            step = len(ep.actions)
            ep.expert_actions.append(expert_action(ep.env))
            ep.on_shortest_path.append(on_shortest_path(ep.env.unwrapped, int(out["actions"][b])))
            # The class `step` recorded for the current frame (`shortest_path.faces_a_blocker`).
            ep.facing_blocker.append(ep.aheads[-1] in BLOCKING_CLASSES)
            if "target_token" in out:
                ep.note_target(int(out["target_token"][b]), patch_size)
            if "ahead_class" in out:
                ep.ahead_predicted.append(int(out["ahead_class"][b]))
            ep.step(out["actions"][b])
            if imagine:
                imagined = out["imagined"][b]
                ep.imagined.append((imagined * 255).round().astype(np.uint8))
                if len(psnr_sums) <= step:
                    psnr_sums.append(0.0)
                    psnr_counts.append(0)
                psnr_sums[step] += _psnr(ep.frames[-1] / 255.0, imagined)
                psnr_counts[step] += 1
            _cut([ep], max_steps)
    for ep in episodes:
        ep.env.close()
    metrics = {
        "success_rate": float(np.mean([ep.success for ep in episodes])),
        "mean_episode_length": float(np.mean([len(ep.actions) for ep in episodes])),
        "success_within": success_within(episodes),
        "episodes": len(episodes),
        **expert_agreement(episodes),
        **grounding(episodes),
        **shortest_paths(episodes),
        **blocker_forwards(episodes),
        **pickups(episodes),
    }
    if imagine:
        metrics["video_psnr_by_step"] = [s / c for s, c in zip(psnr_sums, psnr_counts)]
        metrics["episodes_by_step"] = psnr_counts
    return metrics, episodes
