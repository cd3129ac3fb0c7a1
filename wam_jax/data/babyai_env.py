"""BabyAI episodes played by the expert bot, cut into fixed-length examples for the WAM.

The WAM learns from (frame, action, next frame) with the instruction as context, so each episode
stores the full-view render after reset and after every action, the bot's actions, the mission
string, and whether the bot reached the goal. Levels come from `minigrid`'s BabyAI suite
(Chevalier-Boisvert et al., 2019); the bot is its scripted expert (`BabyAIBot`).

Everything is a pure function of `(level, seed, expert, expert_noise, blocker_noise)`:
`env.reset(seed=seed)` fixes the layout and the mission, the bot plans deterministically from
the grid, and the noise draws come from generators seeded by `seed`, so any process can
regenerate any episode and a stored action sequence replays exactly in a fresh env.

Expert noise (DART, Laskey et al., 2017): with `expert_noise` p > 0, each step takes a uniformly
random movement (left, right, forward) with probability p instead of the bot's action, and the
bot replans from wherever that leads. The episodes then show states the bot's own path never
reaches (turned away, facing a wall, a forward move that changes nothing) and the bot's way
back from them, which is what a cloned policy needs once its own mistakes take it off the
demonstrated path. `actions` are the actions taken (what moves one frame to the next);
`expert_actions` the bot's choice at every frame, which a policy learns where labels are kept.

Blocker noise: uniform noise draws moves in open space and almost never leaves the agent
facing an object, yet a cloned policy's failed episodes are mostly that: forward into an
object it does not recognise as blocking, again and again (RESULTS.md, "Expert-noise (DART)
data"). With `blocker_noise` q > 0, a step where an object the mission does not name is in
front of or beside the agent is, with probability q, a move that meets it: forward when the
agent faces it (a move that changes nothing), else the turn that faces it. The bot's choice
from those states (turn away, or pick the blocker up) is then in the data.

Which expert (`expert`):
  bot        one `BabyAIBot` follows the whole episode, as BabyAI's own demonstrations: it
             remembers the cells it has seen (its view is the agent's 7x7 one) and keeps a stack
             of subgoals (after a noise step, a plan to undo it). About 4% of its choices differ
             from those of a bot that sees the whole room (42 of 1037 on GoToLocal seeds 0-199,
             2026-12-06; 8 of the 354 made right after a uniform noise step): they depend on
             what it has seen so far, which a full-view frame does not show.
  full_view  a `BabyAIBot` made afresh at every state with every cell marked seen: its choice
             is a function of the full-view frame and the mission alone (what the WAM sees),
             the same from a state whatever led there. GoToLocal episodes: 5.06 actions on
             average against the `bot`'s 5.34 (10000-episode builds), every one completed.
"""

import contextlib
import dataclasses
import io
import re

import numpy as np

from genie_jax.data.errors import DataError

FRAME_SIZE = 64  # pixels per side of a rendered frame
NUM_ACTIONS = 7  # left, right, forward, pickup, drop, toggle, done
NO_ACTION = -1  # in `actions` where a frame has no successor: an episode's last frame, padding
# What a noise step draws from: turning and moving, the actions that change the agent's pose.
# (Picking up, dropping or toggling at random would change the level's objects.)
NOISE_ACTIONS = (0, 1, 2)
LEFT, RIGHT, FORWARD, PICKUP = 0, 1, 2, 3
EXPERTS = ("bot", "full_view")  # see the module docstring
# What the cell in front of the agent holds (`ahead_class`), per frame in the data (1.6.0).
AHEAD_CLASSES = ("free", "wall", "object", "named")
AHEAD_FREE, AHEAD_WALL, AHEAD_OBJECT, AHEAD_NAMED = range(len(AHEAD_CLASSES))
# The classes FORWARD cannot enter and the expert never walks into: walls and unnamed objects.
BLOCKING_CLASSES = (AHEAD_WALL, AHEAD_OBJECT)

_LEVEL_NAME = re.compile(r"^BabyAI-(?P<stem>.+)-v\d+$")


@dataclasses.dataclass(frozen=True)
class Episode:
    """One bot episode: `n` actions and the `n + 1` frames around them."""

    frames_THWC: np.ndarray  # uint8 [n + 1, S, S, 3]; frame 0 is the one after reset
    actions_T: np.ndarray  # int32 [n]; actions_T[t] moves frames_THWC[t] to frames_THWC[t + 1]
    # int32 [n]: the bot's choice at frames_THWC[t]; differs from actions_T only where a noise
    # step replaced it (see `play_episode`'s `expert_noise`)
    expert_actions_T: np.ndarray
    mission: str  # the instruction, e.g. "go to the grey ball"
    success: bool  # the last step paid a positive reward
    bot_error: str | None  # why the bot gave up early, if it did (then success is False)
    # uint8 [n + 1, G, G] (row, column of the G x G grid): 1 on the cells holding an object
    # the mission names, in each frame (see `named_object_cells`)
    targets_TGG: np.ndarray
    # uint8 [n + 1]: what the cell in front of the agent holds in each frame (`ahead_class`)
    ahead_T: np.ndarray


def level_slug(level: str) -> str:
    """`BabyAI-GoToLocal-v0` -> `gotolocal`: the level name as used in config names."""
    match = _LEVEL_NAME.match(level)
    if match is None:
        raise DataError(f"level {level!r} is not a BabyAI level name (BabyAI-<Name>-v<N>)")
    return match["stem"].lower()


def make_env(level: str):
    import gymnasium as gym
    import minigrid  # noqa: F401  (registers the BabyAI levels with gymnasium)

    if level not in gym.envs.registry or _LEVEL_NAME.match(level) is None:
        known = sorted(k for k in gym.envs.registry if k.startswith("BabyAI-"))
        raise DataError(
            f"unknown level {level!r}: it must be a registered BabyAI level "
            f"(e.g. {', '.join(known[:4])}; {len(known)} in all)"
        )
    return gym.make(level)


def tile_size(env, level: str, frame_size: int) -> int:
    """Pixels per grid cell so that the whole grid fills a `frame_size` square exactly.

    Resizing a render would blur the one-cell objects the missions name, so a grid that does
    not divide the frame is refused rather than rescaled.
    """
    width, height = env.unwrapped.width, env.unwrapped.height
    if width != height or frame_size % width:
        raise DataError(
            f"level {level} has a {width}x{height} grid, which does not tile a "
            f"{frame_size}x{frame_size} frame (need a square grid whose side divides {frame_size})"
        )
    return frame_size // width


def check_level(level: str, frame_size: int = FRAME_SIZE) -> None:
    """Raises `DataError` unless `level` is a registered BabyAI level that renders at this size."""
    env = make_env(level)
    try:
        tile_size(env, level, frame_size)
    finally:
        env.close()


def _object_descriptions(instr) -> list:
    """Every object description (`ObjDesc`) an instruction names, sequences included."""
    found = []
    for name in ("desc", "desc_move", "desc_fixed"):
        if getattr(instr, name, None) is not None:
            found.append(getattr(instr, name))
    for name in ("instr_a", "instr_b"):
        if getattr(instr, name, None) is not None:
            found.extend(_object_descriptions(getattr(instr, name)))
    return found


def _named_objects(world) -> list:
    """The objects the instruction's verifier matched at reset (all of them, for "a red ball")."""
    return [obj for desc in _object_descriptions(world.instrs) for obj in desc.obj_set]


def named_object_cells(world) -> np.ndarray:
    """uint8 [G, G] (row, column): 1 where a cell holds an object the mission names.

    "The objects it names" are those the instruction's verifier matched at reset (for "go to a
    red ball", every red ball of the room), followed as they move; a carried object is on no
    cell. Simulator knowledge, for training only: the auxiliary target loss
    (`config.wam.target_loss_weight`) asks the model to point at these cells.
    """
    tracked = _named_objects(world)
    cells_GG = np.zeros((world.height, world.width), np.uint8)
    for x in range(world.width):
        for y in range(world.height):
            cell = world.grid.get(x, y)
            if cell is not None and any(cell is obj for obj in tracked):
                cells_GG[y, x] = 1
    return cells_GG


def ahead_class(world) -> int:
    """What the cell in front of the agent holds, an index into `AHEAD_CLASSES`:

      free    the agent may step there (FORWARD moves it): an empty cell, an open door
      wall    a wall
      object  anything else: an object the mission does not name, a closed door
      named   an object the mission names (`named_object_cells`)

    Simulator knowledge, for training only: the auxiliary "cell ahead" loss
    (`config.wam.model.ahead_head`) asks the policy's features for it, the one fact a cloned
    policy gets wrong when it walks into what it faces (RESULTS.md, "Why the 100%-label policy
    stops near 92%")."""
    x, y = (int(v) for v in world.front_pos)
    if not (0 <= x < world.width and 0 <= y < world.height):
        return AHEAD_WALL  # the grid's edge stops the agent as a wall does
    cell = world.grid.get(x, y)
    if cell is None or cell.can_overlap():
        return AHEAD_FREE
    if named_object_cells(world)[y, x]:
        return AHEAD_NAMED
    return AHEAD_WALL if cell.type == "wall" else AHEAD_OBJECT


def grid_size(level: str) -> int:
    """Cells per side of the level's (square) grid."""
    env = make_env(level)
    try:
        return int(env.unwrapped.width)
    finally:
        env.close()


def full_view_action(world) -> int:
    """The `full_view` expert's action from `world`'s current state (module docstring); raises
    as the bot does where it cannot plan."""
    from minigrid.utils.baby_ai_bot import BabyAIBot

    bot = BabyAIBot(world)
    bot.vis_mask[:] = True  # the bot only ever adds seen cells to this mask
    return int(bot.replan())


def expert_action(env) -> int | None:
    """The `full_view` expert's action from `env`'s current state (None where the bot cannot
    plan from it): what the expert would do in a state a policy reached itself.

    A bot made mid-episode that knows only the agent's 7x7 view (this function before
    2026-12-06) cannot route through the cells behind the agent and asks to pick up objects in
    the way that the full-view bot walks round."""
    try:
        return full_view_action(env.unwrapped)
    except Exception:  # the bot's assertions and DisappearedBoxError, as in play_episode
        return None


def _is_blocker(world, tracked: list, x: int, y: int) -> bool:
    """An object at cell (x, y) that the agent could carry and the mission does not name."""
    if not (0 <= x < world.width and 0 <= y < world.height):
        return False
    cell = world.grid.get(x, y)
    return cell is not None and cell.can_pickup() and not any(cell is obj for obj in tracked)


def blocker_move(world, prefer_right: bool = False) -> int | None:
    """The move that meets an object the mission does not name, next to the agent: FORWARD
    when the agent faces one (it changes nothing), else the turn that faces one (LEFT first, or
    RIGHT first with `prefer_right`, when both sides hold one); None when none is in front of
    or beside the agent."""
    from minigrid.core.constants import DIR_TO_VEC

    tracked = _named_objects(world)
    (x, y), direction = world.agent_pos, world.agent_dir
    front_x, front_y = world.front_pos
    if _is_blocker(world, tracked, int(front_x), int(front_y)):
        return FORWARD
    turns = [(LEFT, (direction - 1) % 4), (RIGHT, (direction + 1) % 4)]
    for action, side in reversed(turns) if prefer_right else turns:
        dx, dy = DIR_TO_VEC[side]
        if _is_blocker(world, tracked, int(x + dx), int(y + dy)):
            return action
    return None


def play_episode(
    level: str,
    seed: int,
    frame_size: int = FRAME_SIZE,
    expert_noise: float = 0.0,
    blocker_noise: float = 0.0,
    expert: str = "bot",
) -> Episode:
    """Plays one episode of `level` with layout `seed`, the `expert` (`EXPERTS`, module
    docstring) choosing every action except, with probability `expert_noise` per step, a
    random one of `NOISE_ACTIONS`, and, with probability `blocker_noise` where an object the
    mission does not name is in front of or beside the agent, the `blocker_move` that meets it.

    The episode ends when the env terminates (mission done or failed) or truncates at its own
    `max_steps`. The bot asserts its plan is consistent with the grid and can raise on rare
    layouts; the episode then ends at the last frame reached, with `success` False.
    """
    from minigrid.utils.baby_ai_bot import BabyAIBot

    if not 0.0 <= expert_noise < 1.0:
        raise DataError(f"expert_noise must be in [0, 1), got {expert_noise}")
    if not 0.0 <= blocker_noise < 1.0:
        raise DataError(f"blocker_noise must be in [0, 1), got {blocker_noise}")
    if expert not in EXPERTS:
        raise DataError(f"unknown expert {expert!r}; choose from {EXPERTS}")
    # Seeded by the episode's seed alone, so an episode replays whatever else was played.
    noise_rng = np.random.default_rng([int(seed), 0x5EED])
    # Its own stream, so adding blocker noise leaves the uniform noise's draws as they were.
    blocker_rng = np.random.default_rng([int(seed), 0xB10C])
    env = make_env(level)
    try:
        tile = tile_size(env, level, frame_size)
        # Layout sampling prints every rejected attempt ("Sampling rejected: ...") to stdout.
        with contextlib.redirect_stdout(io.StringIO()):
            obs, _ = env.reset(seed=int(seed))
        world = env.unwrapped
        bot = BabyAIBot(world) if expert == "bot" else None  # the episode-long bot
        frames = [world.get_frame(highlight=False, tile_size=tile)]
        targets = [named_object_cells(world)]
        aheads = [ahead_class(world)]
        actions: list[int] = []
        expert_actions: list[int] = []
        reward, done, bot_error = 0.0, False, None
        # `max_steps` is set by reset (BabyAI scales it with the level); the env truncates
        # there too, the bound here only makes the loop's end obvious.
        while not done and len(actions) < world.max_steps:
            try:
                if expert == "full_view":
                    choice = full_view_action(world)
                else:
                    # `None` tells the bot its own suggestion was taken; after a noise step that
                    # changed it, the bot is told what was done instead and plans a way back.
                    deviated = bool(actions) and actions[-1] != expert_actions[-1]
                    choice = int(bot.replan(actions[-1] if deviated else None))
            except Exception as e:  # assertion or DisappearedBoxError, depending on the layout
                bot_error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                reward = 0.0
                break
            # Both draws every step, so the noise of step t does not depend on earlier draws.
            noisy = noise_rng.random() < expert_noise
            random_action = int(noise_rng.choice(NOISE_ACTIONS))
            meets_blocker = blocker_rng.random() < blocker_noise
            prefer_right = bool(blocker_rng.random() < 0.5)
            blocker = blocker_move(world, prefer_right) if meets_blocker else None
            if noisy:
                action = random_action
            elif blocker is not None:
                action = blocker
            else:
                action = choice
            _, reward, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
            actions.append(action)
            expert_actions.append(choice)
            frames.append(world.get_frame(highlight=False, tile_size=tile))
            targets.append(named_object_cells(world))
            aheads.append(ahead_class(world))
    finally:
        env.close()
    return Episode(
        frames_THWC=np.stack(frames).astype(np.uint8),
        actions_T=np.asarray(actions, np.int32),
        expert_actions_T=np.asarray(expert_actions, np.int32),
        mission=str(obs["mission"]),
        success=bot_error is None and reward > 0,
        bot_error=bot_error,
        targets_TGG=np.stack(targets).astype(np.uint8),
        ahead_T=np.asarray(aheads, np.uint8),
    )


def cut_examples(
    episode: Episode, clip_len: int, *, seed: int, episode_index: int
) -> list[dict[str, object]]:
    """Cuts `episode` into non-overlapping windows of `clip_len` frames from frame 0.

    The last window is padded by repeating the episode's last frame, not dropped: bot episodes
    are mostly shorter than one window, and dropping tails would keep only the long (often
    failed) ones. `length` counts the valid frames of a window; `actions` is `NO_ACTION` from
    the episode's last frame on, so a model masks both with the same `t < length - 1` test.
    """
    frames_THWC = episode.frames_THWC
    num_frames = len(frames_THWC)
    num_windows = -(-num_frames // clip_len)
    padded = num_windows * clip_len
    pad_index_T = np.minimum(np.arange(padded), num_frames - 1)
    video_THWC = frames_THWC[pad_index_T]
    targets_TGG = episode.targets_TGG[pad_index_T]
    ahead_T = episode.ahead_T[pad_index_T]
    actions_T = np.full(padded, NO_ACTION, np.int32)
    actions_T[: len(episode.actions_T)] = episode.actions_T
    expert_actions_T = np.full(padded, NO_ACTION, np.int32)
    expert_actions_T[: len(episode.expert_actions_T)] = episode.expert_actions_T
    examples = []
    for c in range(num_windows):
        window = slice(c * clip_len, (c + 1) * clip_len)
        examples.append(
            {
                "video": video_THWC[window],
                "actions": actions_T[window],
                "expert_actions": expert_actions_T[window],
                "targets": targets_TGG[window],
                "ahead": ahead_T[window],
                "length": min(clip_len, num_frames - c * clip_len),
                "mission": episode.mission,
                "success": int(episode.success),
                "seed": int(seed),
                "episode": int(episode_index),
                "clip_index": c,
            }
        )
    return examples
