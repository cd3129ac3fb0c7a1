"""Shortest paths of GoTo episodes: checked against minigrid's own moves and the expert."""

import contextlib
import io
from types import SimpleNamespace

import numpy as np
import pytest

from wam_jax.closed_loop import blocker_forwards, shortest_paths
from wam_jax.data import babyai_env
from wam_jax.data.babyai_env import (
    AHEAD_FREE,
    AHEAD_NAMED,
    AHEAD_OBJECT,
    AHEAD_WALL,
    FORWARD,
    LEFT,
    RIGHT,
    ahead_class,
    full_view_action,
    named_object_cells,
)
from wam_jax.shortest_path import (
    DIRECTIONS,
    UNREACHABLE,
    actions_to_goal,
    faces_a_blocker,
    fewest_actions,
    on_shortest_path,
    state_after,
)

LEVEL = "BabyAI-GoToLocal-v0"
PICKUP, DONE = 3, 6


def _reset(seed: int, level: str = LEVEL):
    env = babyai_env.make_env(level)
    with contextlib.redirect_stdout(io.StringIO()):
        env.reset(seed=seed)
    return env


def _place(world, x: int, y: int, direction: int) -> None:
    world.agent_pos = np.array((x, y))
    world.agent_dir = direction


def test_moves_follow_minigrid():
    """`state_after` is where minigrid's step puts the agent, walls and objects included."""
    rng = np.random.default_rng(0)
    blocked = 0
    for seed in range(5):
        env = _reset(seed)
        world = env.unwrapped
        for _ in range(40):
            action = int(rng.choice([LEFT, RIGHT, FORWARD, FORWARD]))
            expected = state_after(world, action)
            before = (*(int(v) for v in world.agent_pos), int(world.agent_dir))
            env.step(action)
            after = (*(int(v) for v in world.agent_pos), int(world.agent_dir))
            assert after == expected, (seed, action)
            blocked += action == FORWARD and after == before
            if world.step_count >= world.max_steps - 1:
                break
        env.close()
    assert blocked > 0  # forwards into walls or objects were checked too


def test_the_full_view_experts_moves_lie_on_shortest_paths():
    """The expert plans shortest paths: nearly every move it makes counts, and its episodes
    are as short as `fewest_actions` said at reset."""
    scored, on_path, exact_length = 0, 0, 0
    seeds = range(90_000, 90_030)
    for seed in seeds:
        env = _reset(seed)
        world = env.unwrapped
        shortest = fewest_actions(world)
        assert shortest is not None and shortest >= 1
        done, length = False, 0
        while not done:
            action = full_view_action(world)
            on_path += on_shortest_path(world, action)
            scored += 1
            _, reward, terminated, truncated, _ = env.step(action)
            done, length = terminated or truncated, length + 1
        assert reward > 0
        exact_length += length == shortest
        env.close()
    assert on_path / scored >= 0.98
    assert exact_length >= len(seeds) - 1


def _a_straight_approach(world):
    """(x, y, d): a free cell two cells from a named object, facing it over a free cell."""
    named_GG = named_object_cells(world)
    for y, x in np.argwhere(named_GG):
        for d, (dx, dy) in enumerate(DIRECTIONS):
            near, far = (x - dx, y - dy), (x - 2 * dx, y - 2 * dy)
            cells = [
                world.grid.get(*c) if 0 < c[0] < world.width and 0 < c[1] < world.height else "out"
                for c in (near, far)
            ]
            if all(cell is None for cell in cells):
                return (*far, d)
    return None


def _env_with_a_straight_approach():
    """(env, (x, y, d)) for the first layout that has a straight approach."""
    for seed in range(20):
        env = _reset(seed)
        start = _a_straight_approach(env.unwrapped)
        if start is not None:
            return env, start
        env.close()
    raise AssertionError("no layout with a straight approach in 20 seeds")


def test_distances_and_moves_near_a_named_object():
    env, start = _env_with_a_straight_approach()
    world = env.unwrapped
    _place(world, *start)
    assert fewest_actions(world) == 1
    assert on_shortest_path(world, FORWARD) is True
    for action in (LEFT, RIGHT, PICKUP, DONE):
        assert on_shortest_path(world, action) is False
    # Facing away: two turns, then the forward.
    x, y, d = start
    _place(world, x, y, (d + 2) % 4)
    assert fewest_actions(world) == 3
    assert on_shortest_path(world, LEFT) and on_shortest_path(world, RIGHT)
    assert not on_shortest_path(world, FORWARD)
    env.close()


def test_a_forward_into_a_wall_is_off_the_path():
    env = _reset(3)
    world = env.unwrapped
    # Cell (1, 1) is the room's top-left corner inside the walls; facing north (3) is a wall.
    assert world.grid.get(1, 1) is None, "seed 3's layout keeps the corner free"
    _place(world, 1, 1, 3)
    assert state_after(world, FORWARD) == (1, 1, 3)
    assert on_shortest_path(world, FORWARD) is False
    steps = actions_to_goal(world)
    assert steps[1, 1, 3] != UNREACHABLE
    # Walls are never states.
    assert (steps[0, :, :] == UNREACHABLE).all() and (steps[:, 0, :] == UNREACHABLE).all()
    env.close()


def test_other_missions_are_not_scored():
    env = _reset(0, "BabyAI-PickupLoc-v0")
    assert fewest_actions(env.unwrapped) is None
    assert on_shortest_path(env.unwrapped, FORWARD) is None
    env.close()


def test_shortest_paths_sums_the_scored_actions():
    def played(success, actions, fewest, on_path):
        return SimpleNamespace(
            success=success, actions=actions, fewest_actions=fewest, on_shortest_path=on_path
        )

    episodes = [
        played(True, [2, 0, 2, 2], 3, [True, False, True, True]),
        played(False, [2, 2, 2], 5, [False, False, None]),  # None: the goal was out of reach
    ]
    assert shortest_paths(episodes) == {
        "shortest_path_share": 3 / 6,
        "shortest_path_share_won": 3 / 4,
        "shortest_path_share_failed": 0.0,
        "excess_actions_won": 1.0,
    }
    # Nothing scored (another kind of mission): no entry at all.
    assert shortest_paths([played(True, [3], None, [None])]) == {}


def test_what_counts_as_a_blocker():
    """`ahead_class` names the cell ahead (free, named, object, wall), and `faces_a_blocker`
    is the wall and object classes: the cells FORWARD cannot enter."""
    env, start = _env_with_a_straight_approach()
    world = env.unwrapped
    x, y, d = start
    dx, dy = DIRECTIONS[d]
    _place(world, x, y, d)
    assert ahead_class(world) == AHEAD_FREE and not faces_a_blocker(world)
    _place(world, x + dx, y + dy, d)
    # The named object: forward there is no stall.
    assert ahead_class(world) == AHEAD_NAMED and not faces_a_blocker(world)
    others = [
        (ox, oy)
        for ox in range(1, world.width - 1)
        for oy in range(1, world.height - 1)
        if world.grid.get(ox, oy) is not None and not named_object_cells(world)[oy, ox]
    ]
    ox, oy = others[0]  # GoToLocal rooms hold distractors
    for d, (dx, dy) in enumerate(DIRECTIONS):
        if world.grid.get(ox - dx, oy - dy) is None and 0 < ox - dx < world.width - 1:
            _place(world, ox - dx, oy - dy, d)
            assert ahead_class(world) == AHEAD_OBJECT and faces_a_blocker(world)
            assert state_after(world, FORWARD)[:2] == (ox - dx, oy - dy)
            break
    else:
        pytest.fail("no free cell next to the distractor")
    _place(world, 1, 1, 3)  # the top wall
    assert ahead_class(world) == AHEAD_WALL and faces_a_blocker(world)
    env.close()


def test_blocker_forwards_counts_forwards_while_facing_a_blocker():
    episodes = [
        SimpleNamespace(actions=[FORWARD, FORWARD, LEFT], facing_blocker=[True, True, True]),
        SimpleNamespace(actions=[FORWARD, RIGHT], facing_blocker=[False, True]),
    ]
    assert blocker_forwards(episodes) == {
        "forward_into_blocker_share": 2 / 4,
        "facing_blocker_steps": 4,
    }
    assert blocker_forwards([SimpleNamespace(actions=[2], facing_blocker=[False])]) == {
        "forward_into_blocker_share": None,
        "facing_blocker_steps": 0,
    }
