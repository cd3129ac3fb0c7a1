"""Episodes a trained WAM policy plays, every state labelled by the expert: DAgger's data.

A policy cloned from the bot's demonstrations has seen only the bot's own states. In closed loop
its mistakes take it where the demonstrations never go (facing a wall or an object, a forward
move that changes nothing: RESULTS.md, "Where closed-loop episodes fail"), and it never learned
what to do there. DAgger (Ross, Gordon and Bagnell, 2011) lets the learned policy play, asks the
expert what it would do in every state the policy reached, and trains on the demonstrations
and these states together. Here the policy is a `wam train` run (`load_agent`, actions sampled
at `temperature`) and the expert is the `full_view` bot (`babyai_env.expert_action`): its choice
is a function of the state alone, so it can label a state whatever led there.

A played episode is stored as the bot's are (`babyai_env.Episode`, then `cut_examples`):

  actions         the policy's actions (what moved each frame to the next, and the history the
                  policy sees in closed loop)
  expert_actions  the expert's choice at each frame, what a policy head learns (NO_ACTION where
                  the bot cannot plan from the state)
  success         the policy completed the mission
"""

from collections.abc import Iterator, Sequence

import numpy as np

from genie_jax.data.errors import DataError
from wam_jax.agent import load_agent
from wam_jax.closed_loop import _Episode, play_wam
from wam_jax.data import babyai_env

# Episodes played side by side in one batch of `play_wam` (their frames stay in memory until
# the slowest ends: about 64 frames of 12 KiB each an episode at most).
CHUNK = 100


def stored_episode(episode: _Episode) -> babyai_env.Episode:
    """A closed-loop episode in the layout the data builder writes."""
    expert_T = [babyai_env.NO_ACTION if a is None else a for a in episode.expert_actions]
    return babyai_env.Episode(
        frames_THWC=np.stack(episode.frames).astype(np.uint8),
        actions_T=np.asarray(episode.actions, np.int32),
        expert_actions_T=np.asarray(expert_T, np.int32),
        mission=episode.mission,
        success=bool(episode.success),
        bot_error=None,
        targets_TGG=np.stack(episode.targets).astype(np.uint8),
        ahead_T=np.asarray(episode.aheads, np.uint8),
    )


def play_on_policy(
    workdir: str,
    level: str,
    seeds: Sequence[int],
    *,
    frame_size: int,
    step: int | None = None,
    temperature: float = 1.0,
) -> Iterator[babyai_env.Episode]:
    """The `workdir` run's policy plays `level` once per seed, in order; every state labelled
    by the expert (module docstring).

    Actions are sampled at `temperature` (0: argmax), each episode's from keys folded from its
    env seed and step (`closed_loop`), so the same run, step and seeds give the same episodes
    however they are chunked.
    """
    agent = load_agent(workdir, step=step, action_temperature=temperature)
    if agent.config.frame_size != frame_size:
        raise DataError(
            f"the policy in {workdir} sees {agent.config.frame_size}-pixel frames; this build "
            f"renders {frame_size}-pixel ones"
        )
    for start in range(0, len(seeds), CHUNK):
        chunk = [int(s) for s in seeds[start : start + CHUNK]]
        _, played = play_wam(agent, level, chunk, imagine=False)
        yield from (stored_episode(episode) for episode in played)
