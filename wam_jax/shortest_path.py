"""Which moves of a GoTo episode lie on a shortest path to its goal (simulator knowledge).

A GoTo mission ("go to the red ball") is won by the first action after which the agent faces
an object the mission names. Over the agent's states (cell, direction) and the three moves
(LEFT, RIGHT, FORWARD; FORWARD keeps the state when the cell ahead is not free),
`actions_to_goal` gives the fewest moves from every state to one that faces a named object,
by a breadth-first search backwards from those states. A move is on a shortest path when it
brings that count down by one; every other action (a turn or step away, a forward into a
wall or an object, pickup, drop, toggle, done) is not.

Unlike agreement with the expert's choice, this counts every equally short route as right
(a turn either way round an object), so `1 - share` is an error rate, not a floor. Only
GoTo missions are scored (`is_goto` False: None).
"""

import collections

import numpy as np
from minigrid.envs.babyai.core.verifier import GoToInstr

from wam_jax.data.babyai_env import (
    BLOCKING_CLASSES,
    FORWARD,
    LEFT,
    RIGHT,
    ahead_class,
    named_object_cells,
)

# minigrid's direction vectors: 0 east (+x), 1 south (+y), 2 west, 3 north.
DIRECTIONS = ((1, 0), (0, 1), (-1, 0), (0, -1))
UNREACHABLE = np.iinfo(np.int32).max


def is_goto(world) -> bool:
    """The mission is a single GoTo instruction (the only kind scored here)."""
    return isinstance(world.instrs, GoToInstr)


def _free(world, x: int, y: int) -> bool:
    """The agent may stand on cell (x, y) (FORWARD into it moves the agent)."""
    if not (0 <= x < world.width and 0 <= y < world.height):
        return False
    cell = world.grid.get(x, y)
    return cell is None or cell.can_overlap()


def actions_to_goal(world) -> np.ndarray:
    """int32 [width, height, 4]: the fewest moves from (x, y, direction) to a state that faces
    a cell the mission names (UNREACHABLE where none is reachable; cells the agent cannot
    stand on are UNREACHABLE too)."""
    named_GG = named_object_cells(world)
    steps = np.full((world.width, world.height, 4), UNREACHABLE, np.int32)
    queue = collections.deque()
    for x in range(world.width):
        for y in range(world.height):
            if not _free(world, x, y):
                continue
            for d, (dx, dy) in enumerate(DIRECTIONS):
                fx, fy = x + dx, y + dy
                if 0 <= fx < world.width and 0 <= fy < world.height and named_GG[fy, fx]:
                    steps[x, y, d] = 0
                    queue.append((x, y, d))
    while queue:
        x, y, d = queue.popleft()
        dx, dy = DIRECTIONS[d]
        # The states one move before (x, y, d): a LEFT from d+1, a RIGHT from d-1, and a
        # FORWARD from the free cell behind.
        before = [(x, y, (d + 1) % 4), (x, y, (d - 1) % 4)]
        if _free(world, x - dx, y - dy):
            before.append((x - dx, y - dy, d))
        for state in before:
            if steps[state] == UNREACHABLE:
                steps[state] = steps[x, y, d] + 1
                queue.append(state)
    return steps


def faces_a_blocker(world) -> bool:
    """The cell ahead stops the agent and holds nothing the mission names (a wall, or an
    object in the way): FORWARD changes nothing there, and the expert never takes it."""
    return ahead_class(world) in BLOCKING_CLASSES


def _agent_state(world) -> tuple[int, int, int]:
    return int(world.agent_pos[0]), int(world.agent_pos[1]), int(world.agent_dir)


def state_after(world, action: int) -> tuple[int, int, int]:
    """(x, y, direction) after `action` from the current state; actions other than the three
    moves leave the agent where it is."""
    x, y, d = _agent_state(world)
    dx, dy = DIRECTIONS[d]
    if action == LEFT:
        return x, y, (d - 1) % 4
    if action == RIGHT:
        return x, y, (d + 1) % 4
    if action == FORWARD and _free(world, x + dx, y + dy):
        return x + dx, y + dy, d
    return x, y, d


def fewest_actions(world) -> int | None:
    """The fewest moves from the current state to the goal (the shortest winning episode from
    here); None when the mission is not GoTo or no goal state is reachable."""
    if not is_goto(world):
        return None
    steps = actions_to_goal(world)[_agent_state(world)]
    return None if steps == UNREACHABLE else int(steps)


def on_shortest_path(world, action: int) -> bool | None:
    """`action` from the current state lies on a shortest path to the goal (module
    docstring); None when the mission is not GoTo or no goal state is reachable."""
    if not is_goto(world):
        return None
    steps = actions_to_goal(world)
    now = steps[_agent_state(world)]
    if now == UNREACHABLE:
        return None
    if action not in (LEFT, RIGHT, FORWARD):
        return False
    return bool(steps[state_after(world, action)] == now - 1)
