"""Closed-loop pickups of objects the mission does not name, and what the ahead head said then."""

from types import SimpleNamespace

import numpy as np
import pytest

from wam_jax.closed_loop import _Episode, episode_record, pickups, wrong_pickups
from wam_jax.data.babyai_env import (
    AHEAD_FREE,
    AHEAD_NAMED,
    AHEAD_OBJECT,
    AHEAD_WALL,
    LEFT,
    PICKUP,
    ahead_class,
)

LEVEL = "BabyAI-PickupLoc-v0"


def _facing_unnamed_object() -> _Episode:
    """A PickupLoc episode turned left (up to three times from its start) until its agent faces
    a pickable object the mission does not name: the first such seed from 0."""
    for seed in range(100):
        episode = _Episode(LEVEL, seed, 64)
        world = episode.env.unwrapped
        for _ in range(4):
            cell = world.grid.get(*(int(v) for v in world.front_pos))
            if ahead_class(world) == AHEAD_OBJECT and cell is not None and cell.can_pickup():
                return episode
            episode.step(LEFT)
        episode.env.close()
    raise AssertionError("no PickupLoc seed below 100 starts beside an unnamed object")


def test_picking_up_an_unnamed_object_is_a_wrong_pickup_and_a_second_try_is_not():
    episode = _facing_unnamed_object()
    turns = len(episode.actions)
    episode.step(PICKUP)  # takes the object: the frame changes, the mission is not done
    assert episode.env.unwrapped.carrying is not None and not episode.success
    episode.step(LEFT)
    episode.step(PICKUP)  # hands full: nothing changes, whatever the agent faces
    assert wrong_pickups(episode) == [turns]
    record = episode_record(episode)
    assert record["wrong_pickups"] == [turns]
    assert record["ahead"][turns] == AHEAD_OBJECT and len(record["ahead"]) == turns + 3
    assert "ahead_predicted" not in record  # no ahead head played it
    assert pickups([episode]) == {"wrong_pickup_episodes": 1.0}
    episode.env.close()


def test_pickup_metrics_count_episodes_and_the_ahead_heads_word_at_each_wrong_pickup():
    def played(actions, aheads, stalled, predicted):
        return SimpleNamespace(
            render=True,
            actions=actions,
            aheads=aheads + [AHEAD_FREE],  # the frame after the last action
            stalled=lambda: stalled,
            ahead_predicted=predicted,
        )

    episodes = [
        # Two wrong pickups (the head said "named" at the first, "object" at the second);
        # a stalled pickup at an object and a pickup of the named object are not wrong.
        played(
            [PICKUP, PICKUP, PICKUP, PICKUP],
            [AHEAD_OBJECT, AHEAD_OBJECT, AHEAD_OBJECT, AHEAD_NAMED],
            [False, True, False, False],
            [AHEAD_NAMED, AHEAD_OBJECT, AHEAD_OBJECT, AHEAD_NAMED],
        ),
        played([LEFT, PICKUP], [AHEAD_WALL, AHEAD_WALL], [False, True], [AHEAD_WALL, AHEAD_FREE]),
    ]
    assert wrong_pickups(episodes[0]) == [0, 2]
    assert wrong_pickups(episodes[1]) == []
    assert pickups(episodes) == {
        "wrong_pickup_episodes": 0.5,
        "ahead_accuracy": 4 / 6,
        "ahead_named_at_wrong_pickups": 0.5,
    }
    no_wrong = [episodes[1]]
    assert pickups(no_wrong)["ahead_named_at_wrong_pickups"] is None
    unrendered = SimpleNamespace(render=False, actions=[PICKUP])
    assert wrong_pickups(unrendered) == [] and pickups([unrendered]) == {}


@pytest.mark.parametrize("action", [LEFT, PICKUP])
def test_aheads_line_up_with_the_actions_taken(action):
    """`aheads[t]` is the class before action t, as the metrics read it."""
    episode = _facing_unnamed_object()
    turns = len(episode.actions)
    first = ahead_class(episode.env.unwrapped)
    episode.step(action)
    assert episode.aheads[turns] == first == AHEAD_OBJECT
    assert len(episode.aheads) == len(episode.frames) == turns + 2
    assert not np.array_equal(episode.frames[-2], episode.frames[-1])  # both actions show
    episode.env.close()
