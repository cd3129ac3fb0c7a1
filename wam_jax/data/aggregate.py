"""The expert's training windows and a policy's (DAgger's aggregated data) as one source.

`config.wam.on_policy_data_dir` names a `wam data babyai --actor` build: episodes a trained
policy played, every state labelled by the expert (`wam_jax.on_policy`). A run trains on the
union of its `data_dir`'s training windows and that build's, each window read as often as the
other (the grain sampler shuffles the union as it would one split). The expert's split comes
first, so its windows keep their indices; the union's `metadata` (episode counts, seeds) is the
expert build's, which every label plan and check reads. Runs that read both have every label
(`task.on_policy_source`), so no window's `episode` index is looked up in a label plan.
"""

from genie_jax.data.source import ClipSource


class AggregatedSource:
    """`len` and `[i]` over the windows of `expert` then those of `on_policy`."""

    def __init__(self, expert: ClipSource, on_policy: ClipSource):
        self._expert = expert
        self._on_policy = on_policy
        self.metadata = expert.metadata
        self.fields = expert.fields & on_policy.fields
        self.version = expert.version

    def __len__(self) -> int:
        return len(self._expert) + len(self._on_policy)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} of {len(self)}")
        split = len(self._expert)
        return self._expert[index] if index < split else self._on_policy[index - split]

    def __repr__(self) -> str:
        # grain checks this on restore: a resumed run must read the same union.
        return f"AggregatedSource({self._expert!r} + {self._on_policy!r})"
