"""The engine's LinUCB, kept equal to a replay of the store's feedback log.

The policy is a function of the log alone, and of the prior it starts from: start from
``A = lambda I``, ``b = 0``, apply the :class:`~uniscale_integrations.policy.prior.Prior`'s
evidence when there is one, then apply every feedback row in ``seq`` order, each with the joint features
``z_a ⊗ c_t`` rebuilt from the decision's stored context ``c_t`` and its configuration's
features ``z_a`` *in this engine's space*. Rows whose configuration is not in the space
are skipped. Hence:

- every process sharing a store holds the same policy, since each applies the same rows
  in the same order (bit for bit on one machine with one BLAS set-up);
- a restart loses nothing that was committed;
- a changed space (a model or configuration added or removed, which changes the layout
  of ``z`` and the normalised costs) is refitted from the log on the configurations
  still present, with their features recomputed in the new space.

A snapshot of the replayed policy every ``snapshot_every`` rows spares a full replay at
start-up. Snapshots are keyed by the space's features and the hyperparameters that shape
the state, so one is only resumed by a replay that would have produced it.
"""

from __future__ import annotations

import hashlib
import json
import logging

import numpy as np

from uniscale_integrations.errors import StoreError
from uniscale_integrations.features.joint import FloatArray, ProductFeatures
from uniscale_integrations.features.space import ConfigSpace
from uniscale_integrations.policy.linucb import LinUCB, LinUCBPolicy, joint_linucb
from uniscale_integrations.policy.prior import Prior
from uniscale_integrations.store.base import PolicyStore
from uniscale_integrations.store.records import LoggedFeedback

logger = logging.getLogger(__name__)


class Replica:
    """UniScale's policy (LinUCB over ``space``) as the replay of ``store``'s feedback log up to :attr:`seq`;
    each row is applied through the :class:`~uniscale_integrations.policy.base.Policy` contract.

    ``actions`` holds the (unit-norm) features of the space's configurations, row by row.
    Not thread-safe: the engine serialises calls.
    """

    def __init__(
        self,
        store: PolicyStore,
        space: ConfigSpace,
        actions: FloatArray,
        context_dim: int,
        *,
        alpha: float,
        l2_lambda: float,
        gamma: float,
        shrinkage: float,
        snapshot_every: int = 1000,
        prior: Prior | None = None,
    ):
        if isinstance(snapshot_every, bool) or not isinstance(snapshot_every, int) or snapshot_every < 0:
            raise ValueError(f"snapshot_every must be a non-negative integer (0: never), got {snapshot_every!r}")
        self._store = store
        self._arms = {str(config): i for i, config in enumerate(space)}
        self._actions = np.array(actions, dtype=np.float64)
        self._context_dim = context_dim
        self._alpha, self._l2_lambda, self._gamma, self._shrinkage = alpha, l2_lambda, gamma, shrinkage
        self._snapshot_every = snapshot_every
        self._space = space
        self.prior = prior
        self.key = self._policy_key()
        """What a snapshot must match to be resumed: configs, features, ``dc``, ``lambda``, ``gamma``, the shrinkage,
        the prior."""
        self.policy, self.seq = self._resume()
        self._snapshot_seq = self.seq
        self.catch_up()

    def _policy_key(self) -> str:
        digest = hashlib.sha256()
        shape = [list(self._arms), self._context_dim, self._l2_lambda, self._gamma, self._shrinkage]
        digest.update(json.dumps(shape).encode())
        digest.update(np.ascontiguousarray(self._actions, dtype="<f8").tobytes())
        digest.update((self.prior.digest if self.prior is not None else "no prior").encode())
        return digest.hexdigest()

    @property
    def bandit(self) -> LinUCB:
        """The policy's LinUCB."""
        return self.policy.bandit

    def _fresh(self) -> LinUCBPolicy:
        """The policy before any feedback: empty, or the prior's evidence applied."""
        bandit = joint_linucb(
            self._actions.shape[1],
            self._context_dim,
            alpha=self._alpha,
            l2_lambda=self._l2_lambda,
            gamma=self._gamma,
            shrinkage=self._shrinkage,
        )
        policy = LinUCBPolicy(bandit)
        if self.prior is not None:
            if self.prior.contexts.shape[1] != self._context_dim:
                raise ValueError(
                    f"prior {self.prior.name!r} has contexts of {self.prior.contexts.shape[1]} numbers "
                    f"but this engine's encoder makes {self._context_dim}"
                )
            self.prior.apply(bandit, self._space, self._actions)
        return policy

    def _resume(self) -> tuple[LinUCBPolicy, int]:
        snapshot = self._store.load_snapshot(self.key)
        if snapshot is None:
            return self._fresh(), 0
        seq, state = snapshot
        try:
            return LinUCBPolicy(LinUCB.from_state({**state, "alpha": self._alpha})), seq
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("store %s: invalid policy snapshot (%s); replaying the whole log", self._store.path, exc)
            return self._fresh(), 0

    def catch_up(self) -> int:
        """Apply the rows committed since the last call (by any process); returns how many were read."""
        read = 0
        while rows := self._store.feedback_since(self.seq):
            for row in rows:
                self._apply(self.policy, row)
                self.seq = row.seq
            read += len(rows)
        if self._snapshot_every and self.seq - self._snapshot_seq >= self._snapshot_every:
            try:
                self._store.save_snapshot(self.key, self.seq, self.bandit.state_dict())
            except StoreError as exc:  # a snapshot only saves time at start-up; the log is intact
                logger.warning("could not save a policy snapshot: %s", exc)
            self._snapshot_seq = self.seq
        return read

    def rebuild(self) -> LinUCB:
        """A new bandit replayed from the whole log, snapshots ignored."""
        policy, seq = self._fresh(), 0
        while rows := self._store.feedback_since(seq):
            for row in rows:
                self._apply(policy, row)
            seq = rows[-1].seq
        return policy.bandit

    def _apply(self, policy: LinUCBPolicy, row: LoggedFeedback) -> None:
        arm = self._arms.get(row.config)
        if arm is None:  # a configuration this space no longer has
            return
        if row.context.shape != (self._context_dim,):
            raise StoreError(
                f"store {self._store.path}: decision {row.decision_id} has a context of {row.context.size} numbers "
                f"but this engine's encoder makes {self._context_dim}; open the store with the encoder it was made with"
            )
        policy.update(ProductFeatures(row.context, self._actions), arm, row.reward)
