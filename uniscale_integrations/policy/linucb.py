"""LinUCB over joint query-configuration features, with optional discounting.

The estimator is ridge regression on the joint features ``x_{t,a}``::

    A = lambda * I + sum_s x_s x_s^T,    b = sum_s r_s x_s,    theta = A^{-1} b
    a_t = argmax_a  theta^T x_{t,a} + alpha * sqrt(x_{t,a}^T A^{-1} x_{t,a})

``A^{-1}`` is maintained by Sherman-Morrison (``O(d^2)`` per update) and ``theta`` by
the matching recursive-least-squares step (``O(d)`` given ``A^{-1} x``). ``A`` and ``b``
are also kept explicitly, and every :attr:`LinUCB.refresh_every` updates the inverse is
recomputed exactly from ``A`` (``O(d^3)``, so ``O(d^2)`` amortised while
``refresh_every >= d``), which stops rounding errors from accumulating over long streams.

Discounting (``gamma < 1``), for drifting environments
-------------------------------------------------------
D-LinUCB (Russac, Vernade & Cappe, NeurIPS 2019) weights old evidence geometrically::

    V_t = lambda * I + sum_s gamma^(t-s) x_s x_s^T,    b_t = sum_s gamma^(t-s) r_s x_s

Its regulariser top-up ``(1 - gamma) * lambda * I`` is a full-rank change, so ``V_t^{-1}``
cannot be updated exactly in ``O(d^2)``. What this module implements, exactly, is::

    every update:               A <- gamma * A + x x^T,   b <- gamma * b + r x
                                A^{-1} <- A^{-1} / gamma, then Sherman-Morrison with x
    every refresh_every-th one: A <- A + lambda * (1 - gamma^k) * I   (k = refresh_every)
                                A^{-1} <- inv(A),  theta <- A^{-1} b

so that at all times ``A_t = lambda * gamma^j * I + sum_s gamma^(t-s) x_s x_s^T`` with
``j = n_updates % refresh_every`` (property :attr:`LinUCB.regularizer` gives
``lambda * gamma^j``). Between top-ups ``A^{-1}`` stays exact: scaling ``A`` by ``gamma``
scales ``A^{-1}`` by ``1 / gamma`` and the rank-one term is Sherman-Morrison. At every
top-up ``A`` equals D-LinUCB's ``V_t``. ``refresh_every = min(max(d, 32), H)`` with
``H = floor(ln 2 / ln(1 / gamma))`` (at least 1), so the regulariser never falls below
``lambda / 2`` and ``A^{-1}`` stays bounded by ``2 / lambda``; nothing grows without
bound on long streams (``||b|| <= max|r| * max||x|| / (1 - gamma)``). The exploration
width is ``sqrt(x^T A^{-1} x)``, the simplification the project uses, not the paper's
``sqrt(x^T V^{-1} W V^{-1} x)``. With ``gamma = 1`` this is plain LinUCB and the refresh
only recomputes the inverse. Cost: amortised ``O(d^2)`` per update while
``refresh_every >= d`` (roughly ``gamma >= 2^(-1/d)``, e.g. ``gamma >= 0.9973`` at ``d = 256``);
stronger discounting re-inverts more often, ``O(d^3 / refresh_every)`` amortised.

Example
-------
>>> import numpy as np
>>> from uniscale_integrations.features.joint import ProductFeatures
>>> rng = np.random.default_rng(0)
>>> bandit = LinUCB(dim=6, alpha=0.5)
>>> configs = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]])  # z_a: constant, size
>>> for _ in range(200):
...     feats = ProductFeatures(context=np.r_[1.0, rng.normal(size=2)], actions=configs)
...     arm = bandit.select(feats)
...     reward = 0.5 * configs[arm, 1] * feats.context[1] + 0.1 * rng.normal()
...     bandit = bandit.update(feats.row(arm), reward)
>>> bandit.select(ProductFeatures(context=np.array([1.0, 1.0, 0.0]), actions=configs))
2
>>> bandit.select(ProductFeatures(context=np.array([1.0, -1.0, 0.0]), actions=configs))
0
>>> bandit.n_updates
200
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from uniscale_integrations.features.joint import ProductFeatures, interaction_ridge_scale
from uniscale_integrations.policy.base import Policy, PolicyContext

__all__ = ["DEFAULT_ALPHA", "DEFAULT_SHRINKAGE", "STATE_FORMAT_VERSION", "LinUCB", "LinUCBPolicy", "joint_linucb"]

FloatArray = NDArray[np.float64]

STATE_FORMAT_VERSION = 2
"""Version of the layout written by :meth:`LinUCB.state_dict` (2 added ``ridge_scale``; a version-1 state is
refused, and a store's version-1 snapshots have other keys, so the log is replayed instead)."""

DEFAULT_ALPHA = 0.5
"""The engine's exploration weight when none is given (the tuning split's choice in cost-sensitive mode)."""

DEFAULT_SHRINKAGE = 1.0
"""How much harder the engine's ridge holds the query-by-configuration interactions than the main effects
(:func:`~uniscale_integrations.features.joint.interaction_ridge_scale`)."""

_TIE_RTOL = 1e-12
"""UCB values within this relative distance of the best count as tied (see ``select``)."""

_MIN_REFRESH = 32
"""Smallest refresh interval when ``gamma = 1`` or the discount half-life allows it."""

_ARRAY_KEYS = ("A", "A_inv", "b", "theta", "ridge_scale")
_SCALAR_KEYS = (
    "format_version",
    "dim",
    "alpha",
    "l2_lambda",
    "gamma",
    "n_updates",
    "since_refresh",
)


def _refresh_interval(dim: int, gamma: float) -> int:
    """Updates between exact re-inversions (and, for ``gamma < 1``, regulariser top-ups)."""
    interval = max(dim, _MIN_REFRESH)
    if gamma < 1.0:
        half_life = math.floor(math.log(2.0) / -math.log(gamma))
        interval = min(interval, half_life)
    return max(1, interval)


def _check_hyperparameters(
    dim: object, alpha: object, l2_lambda: object, gamma: object
) -> tuple[int, float, float, float]:
    """Validated ``(dim, alpha, l2_lambda, gamma)`` as Python numbers, or ``ValueError``."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim <= 0:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    reals: dict[str, float] = {}
    for name, value in (("alpha", alpha), ("l2_lambda", l2_lambda), ("gamma", gamma)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ValueError(f"{name} must be a real number, got {value!r}")
        reals[name] = float(value)
        if not math.isfinite(reals[name]):
            raise ValueError(f"{name} must be finite, got {value!r}")
    if reals["alpha"] < 0.0:
        raise ValueError(f"alpha must be >= 0, got {alpha!r}")
    if reals["l2_lambda"] <= 0.0:
        raise ValueError(f"l2_lambda must be > 0, got {l2_lambda!r}")
    if not 0.0 < reals["gamma"] <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")
    return int(dim), reals["alpha"], reals["l2_lambda"], reals["gamma"]


def _check_ridge_scale(ridge_scale: ArrayLike | None, dim: int) -> FloatArray:
    """The validated per-coordinate ridge multipliers (ones when ``None``), or ``ValueError``."""
    if ridge_scale is None:
        return np.ones(dim)
    try:
        scale = np.array(ridge_scale, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"ridge_scale must be an array of real numbers, got {ridge_scale!r}") from exc
    if scale.shape != (dim,):
        raise ValueError(f"ridge_scale must have shape ({dim},), got {scale.shape}")
    if not (np.isfinite(scale).all() and (scale > 0.0).all()):
        raise ValueError("ridge_scale must be finite and > 0")
    return scale


def _readonly(array: FloatArray) -> FloatArray:
    view = array.view()
    view.flags.writeable = False
    return view


class LinUCB:
    """Linear UCB over joint features, ``A^{-1}`` kept by Sherman-Morrison.

    Parameters
    ----------
    dim:
        Length ``d`` of the joint feature vectors.
    alpha:
        Exploration weight: UCB = mean + ``alpha`` * width. ``0`` gives a greedy policy.
    l2_lambda:
        Ridge regulariser ``lambda`` (``A`` starts at ``lambda * I``).
    gamma:
        Discount in ``(0, 1]``; ``1`` keeps all evidence, ``< 1`` forgets at rate ``gamma``
        per update (see the module docstring for the exact scheme).
    ridge_scale:
        Per-coordinate multipliers of ``lambda`` (length ``dim``, all > 0; default all 1): the
        regulariser is ``lambda * diag(ridge_scale)``, a Gaussian prior whose variance is
        ``1 / (lambda * ridge_scale[i])`` on coordinate ``i``.
        :func:`~uniscale_integrations.features.joint.interaction_ridge_scale` shrinks the
        query-by-configuration interactions harder than the main effects.

    ``select`` and ``scores`` take either an ``(n_configs, dim)`` array of joint features
    or a :class:`~uniscale_integrations.features.joint.ProductFeatures`, which is scored in
    ``O(d^2 + n * dz^2)`` instead of ``O(n * d^2)`` with the same numbers.

    Not thread-safe: callers that share one instance across threads must serialise
    ``select``/``update``/``state_dict`` themselves.
    """

    __slots__ = (
        "_A",
        "_A_inv",
        "_alpha",
        "_b",
        "_dim",
        "_gamma",
        "_l2_lambda",
        "_n_updates",
        "_refresh_every",
        "_ridge",
        "_since_refresh",
        "_theta",
        "_work",
    )

    def __init__(
        self,
        dim: int,
        alpha: float = 1.0,
        l2_lambda: float = 1.0,
        gamma: float = 1.0,
        ridge_scale: ArrayLike | None = None,
    ):
        self._dim, self._alpha, self._l2_lambda, self._gamma = _check_hyperparameters(dim, alpha, l2_lambda, gamma)
        self._ridge: FloatArray = _check_ridge_scale(ridge_scale, self._dim)
        self._refresh_every = _refresh_interval(self._dim, self._gamma)
        d = self._dim
        self._A: FloatArray = np.diag(self._l2_lambda * self._ridge)
        self._A_inv: FloatArray = np.diag(1.0 / (self._l2_lambda * self._ridge))
        self._b: FloatArray = np.zeros(d)
        self._theta: FloatArray = np.zeros(d)
        self._work: FloatArray = np.empty((d, d))
        self._n_updates = 0
        self._since_refresh = 0

    # ------------------------------------------------------------------ read-only state
    @property
    def dim(self) -> int:
        return self._dim

    @property
    def alpha(self) -> float:
        return self._alpha

    @property
    def l2_lambda(self) -> float:
        return self._l2_lambda

    @property
    def gamma(self) -> float:
        return self._gamma

    @property
    def n_updates(self) -> int:
        """Number of accepted :meth:`update` calls."""
        return self._n_updates

    @property
    def refresh_every(self) -> int:
        """Updates between exact re-inversions of ``A`` (and regulariser top-ups)."""
        return self._refresh_every

    @property
    def ridge_scale(self) -> FloatArray:
        """Read-only view of the per-coordinate multipliers of ``lambda`` (all 1 for plain ridge)."""
        return _readonly(self._ridge)

    @property
    def regularizer(self) -> float:
        """The scale of the ridge term currently inside ``A``, ``lambda * gamma ** (n_updates % refresh_every)``;
        the term itself is ``regularizer * diag(ridge_scale)``."""
        return self._l2_lambda * self._gamma**self._since_refresh

    @property
    def A(self) -> FloatArray:  # noqa: N802 - the paper's name
        """Read-only view of the design matrix ``A``."""
        return _readonly(self._A)

    @property
    def A_inv(self) -> FloatArray:  # noqa: N802 - the paper's name
        """Read-only view of the maintained ``A^{-1}``."""
        return _readonly(self._A_inv)

    @property
    def b(self) -> FloatArray:
        """Read-only view of ``b = sum r x`` (discounted when ``gamma < 1``)."""
        return _readonly(self._b)

    @property
    def theta(self) -> FloatArray:
        """Read-only view of the ridge estimate ``theta = A^{-1} b``."""
        return _readonly(self._theta)

    # ------------------------------------------------------------------ decisions
    def scores(self, X: ProductFeatures | ArrayLike) -> tuple[FloatArray, FloatArray]:  # noqa: N803
        """Per-row ``(mean, width)``: ``theta^T x`` and ``sqrt(x^T A^{-1} x)``."""
        if isinstance(X, ProductFeatures):
            return self._scores_product(X)
        return self._scores_dense(self._check_matrix(X))

    def ucb(self, X: ProductFeatures | ArrayLike) -> FloatArray:  # noqa: N803
        """Per-row upper confidence bound ``mean + alpha * width``."""
        mean, width = self.scores(X)
        if self._alpha == 0.0:
            return mean
        mean += self._alpha * width
        return mean

    def select(self, X: ProductFeatures | ArrayLike) -> int:  # noqa: N803
        """Index of the row with the largest UCB.

        Ties go to the lowest index. UCB values within ``1e-12`` (relative to the largest
        magnitude) of the best count as tied, so floating-point rounding, which differs
        between the dense and the factored path, cannot change the decision.
        """
        values = self.ucb(X)
        best = values.max()
        tolerance = _TIE_RTOL * max(abs(best), abs(values.min()))
        return int(np.argmax(values >= best - tolerance))

    def _check_matrix(self, X: ArrayLike) -> FloatArray:  # noqa: N803
        matrix = np.asarray(X, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[0] == 0 or matrix.shape[1] != self._dim:
            raise ValueError(f"X must have shape (n_configs >= 1, {self._dim}), got {matrix.shape}")
        if not np.isfinite(matrix).all():
            raise ValueError("X must be finite (no NaN or inf)")
        return matrix

    def _scores_dense(self, X: FloatArray) -> tuple[FloatArray, FloatArray]:  # noqa: N803
        mean = X @ self._theta
        width2 = np.einsum("ij,ij->i", X @ self._A_inv, X)
        return mean, np.sqrt(np.maximum(width2, 0.0, out=width2), out=width2)

    def _scores_product(self, features: ProductFeatures) -> tuple[FloatArray, FloatArray]:
        context, actions = features.context, features.actions
        dz, dc = actions.shape[1], context.shape[0]
        if dz * dc != self._dim:
            raise ValueError(f"ProductFeatures of dim {dz} x {dc} = {dz * dc} do not match bandit dim {self._dim}")
        # mean_a = z_a^T Theta c with Theta = theta.reshape(dz, dc).
        mean = actions @ (self._theta.reshape(dz, dc) @ context)
        # M[i, k] = sum_{j,l} c_j A^{-1}[(i, j), (k, l)] c_l, then width_a^2 = z_a^T M z_a.
        half = (self._A_inv.reshape(self._dim * dz, dc) @ context).reshape(dz, dc, dz)
        m = context @ half  # (dc,) @ (dz, dc, dz) -> (dz, dz)
        width2 = np.einsum("ij,ij->i", actions @ m, actions)
        return mean, np.sqrt(np.maximum(width2, 0.0, out=width2), out=width2)

    # ------------------------------------------------------------------ learning
    def update(self, x: ArrayLike, reward: float) -> LinUCB:
        """Add the observation ``(x, reward)``; returns ``self``.

        Raises :class:`ValueError`, leaving the state untouched, when ``x`` does not have
        shape ``(dim,)``, when ``x`` or ``reward`` is not finite, or when ``x^T x`` or
        ``reward * ||x||`` would overflow.
        """
        vec = np.asarray(x, dtype=np.float64)
        if vec.shape != (self._dim,):
            raise ValueError(f"x must have shape ({self._dim},), got {vec.shape}")
        with np.errstate(over="ignore", invalid="ignore"):
            sq_norm = float(vec @ vec)  # NaN or inf if any entry is, or if the squares overflow
        if not math.isfinite(sq_norm):
            raise ValueError("x must be finite (no NaN or inf) and x^T x must not overflow")
        try:
            r = float(reward)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"reward must be a real number, got {reward!r}") from exc
        if not math.isfinite(r) or not math.isfinite(r * math.sqrt(sq_norm)):
            raise ValueError(f"reward must be finite and reward * ||x|| must not overflow, got {r!r}")
        self._apply(vec, r)
        return self

    def _apply(self, x: FloatArray, r: float) -> None:
        design, inverse, b, work = self._A, self._A_inv, self._b, self._work
        if self._gamma != 1.0:
            # A <- gamma A, b <- gamma b: A^{-1} scales by 1/gamma, theta is unchanged.
            design *= self._gamma
            b *= self._gamma
            inverse *= 1.0 / self._gamma
        np.multiply.outer(x, x, out=work)
        design += work
        b += r * x
        # Sherman-Morrison with the symmetric factor v = A^{-1} x / sqrt(1 + x^T A^{-1} x);
        # theta by the matching recursive-least-squares step.
        u = inverse @ x
        denom = 1.0 + float(x @ u)
        residual = r - float(x @ self._theta)
        self._theta += (residual / denom) * u
        u *= 1.0 / math.sqrt(denom)
        np.multiply.outer(u, u, out=work)
        inverse -= work
        self._n_updates += 1
        self._since_refresh += 1
        if self._since_refresh >= self._refresh_every:
            self._refresh()

    def _refresh(self) -> None:
        """Top the regulariser back up to ``lambda`` and re-invert ``A`` exactly."""
        if self._gamma != 1.0:
            top_up = self._l2_lambda * (1.0 - self._gamma**self._since_refresh)
            self._A.flat[:: self._dim + 1] += top_up * self._ridge
        inverse = np.linalg.inv(self._A)
        np.add(inverse, inverse.T, out=self._A_inv)
        self._A_inv *= 0.5
        np.matmul(self._A_inv, self._b, out=self._theta)
        self._since_refresh = 0

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, np.ndarray | int | float]:
        """The full state as plain data: five float64 arrays plus JSON-able scalars.

        Keys ``A``, ``A_inv``, ``b``, ``theta``, ``ridge_scale`` hold copies of the arrays; the rest
        (``format_version``, ``dim``, ``alpha``, ``l2_lambda``, ``gamma``, ``n_updates``,
        ``since_refresh``) are Python ``int``/``float``. Store the arrays with
        ``np.savez`` (load with ``allow_pickle=False``) and the scalars as JSON, or all of it
        with ``np.savez``; :meth:`from_state` accepts either, and the round trip is exact.
        """
        return {
            "A": self._A.copy(),
            "A_inv": self._A_inv.copy(),
            "b": self._b.copy(),
            "theta": self._theta.copy(),
            "ridge_scale": self._ridge.copy(),
            "format_version": STATE_FORMAT_VERSION,
            "dim": self._dim,
            "alpha": self._alpha,
            "l2_lambda": self._l2_lambda,
            "gamma": self._gamma,
            "n_updates": self._n_updates,
            "since_refresh": self._since_refresh,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> LinUCB:
        """Rebuild a bandit from :meth:`state_dict` output; raises ``ValueError`` if invalid.

        Checks: exactly the expected keys, the format version, the hyperparameters, array
        shapes, finiteness, symmetry of ``A`` and ``A^{-1}``, that ``A^{-1}`` inverts ``A``
        and that ``theta = A^{-1} b`` (both to a tolerance scaled by the condition number).
        """
        missing = [k for k in (*_ARRAY_KEYS, *_SCALAR_KEYS) if k not in state]
        unknown = sorted(set(state) - {*_ARRAY_KEYS, *_SCALAR_KEYS})
        if missing or unknown:
            raise ValueError(f"invalid LinUCB state: missing keys {missing}, unknown keys {unknown}")
        scalars = {k: _scalar(state[k], k) for k in _SCALAR_KEYS}
        if scalars["format_version"] != STATE_FORMAT_VERSION:
            raise ValueError(
                f"unsupported LinUCB state format_version {scalars['format_version']!r}, "
                f"expected {STATE_FORMAT_VERSION}"
            )
        for key in ("dim", "n_updates", "since_refresh"):
            value = scalars[key]
            if not (isinstance(value, int) and value >= 0):
                raise ValueError(f"state[{key!r}] must be a non-negative integer, got {value!r}")
        d = scalars["dim"]
        arrays: dict[str, FloatArray] = {}
        for key, shape in (("A", (d, d)), ("A_inv", (d, d)), ("b", (d,)), ("theta", (d,)), ("ridge_scale", (d,))):
            value = state[key]
            if not isinstance(value, np.ndarray) or value.dtype != np.float64:
                raise ValueError(f"state[{key!r}] must be a float64 ndarray")
            if value.shape != shape:
                raise ValueError(f"state[{key!r}] must have shape {shape}, got {value.shape}")
            if not np.isfinite(value).all():
                raise ValueError(f"state[{key!r}] must be finite")
            arrays[key] = np.array(value, dtype=np.float64, order="C", copy=True)
        bandit = cls(
            d,
            alpha=scalars["alpha"],
            l2_lambda=scalars["l2_lambda"],
            gamma=scalars["gamma"],
            ridge_scale=arrays["ridge_scale"],
        )
        if scalars["since_refresh"] >= bandit._refresh_every:
            raise ValueError(
                f"state['since_refresh'] must be < refresh_every = {bandit._refresh_every}, "
                f"got {scalars['since_refresh']}"
            )
        _check_consistent(arrays["A"], arrays["A_inv"], arrays["b"], arrays["theta"])
        bandit._A, bandit._A_inv = arrays["A"], arrays["A_inv"]
        bandit._b, bandit._theta = arrays["b"], arrays["theta"]
        bandit._n_updates = scalars["n_updates"]
        bandit._since_refresh = scalars["since_refresh"]
        return bandit

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        top = np.argsort(-np.abs(self._theta), kind="stable")[: min(3, self._dim)]
        largest = ", ".join(f"[{i}]={self._theta[i]:+.3g}" for i in top)
        return (
            f"LinUCB(dim={self._dim}, alpha={self._alpha:g}, l2_lambda={self._l2_lambda:g}, "
            f"gamma={self._gamma:g}, n_updates={self._n_updates}, "
            f"|theta|={float(np.linalg.norm(self._theta)):.3g}, largest theta: {largest})"
        )

    # ------------------------------------------------------------------ testing
    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, float]]:
        """Hyperparameters the generic contract tests run this policy with."""
        yield {"alpha": 1.0, "l2_lambda": 1.0, "gamma": 1.0}
        yield {"alpha": 0.3, "l2_lambda": 2.5, "gamma": 1.0}
        yield {"alpha": 1.0, "l2_lambda": 1.0, "gamma": 0.97}
        yield {"alpha": 0.0, "l2_lambda": 0.5, "gamma": 0.9}


def _scalar(value: object, key: str) -> Any:
    """A Python scalar from a state entry (accepts 0-d arrays, as ``np.load`` returns)."""
    if isinstance(value, np.ndarray):
        if value.shape != ():
            raise ValueError(f"state[{key!r}] must be a scalar, got an array of shape {value.shape}")
        value = value.item()
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"state[{key!r}] must be a number, got {value!r}")
    return value


def _check_consistent(A: FloatArray, A_inv: FloatArray, b: FloatArray, theta: FloatArray) -> None:  # noqa: N803
    """Raise ``ValueError`` unless ``A_inv`` inverts ``A`` and ``theta = A_inv b``."""
    d = A.shape[0]
    if not (np.array_equal(A, A.T) and np.array_equal(A_inv, A_inv.T)):
        raise ValueError("state['A'] and state['A_inv'] must be symmetric")
    eps = np.finfo(np.float64).eps
    condition = float(np.linalg.norm(A) * np.linalg.norm(A_inv))
    tolerance = max(1e-6, 1e3 * d * eps * condition)
    residual = float(np.abs(A_inv @ A - np.eye(d)).max())
    if not residual <= tolerance:
        raise ValueError(f"state['A_inv'] is not the inverse of state['A'] (max |A_inv A - I| = {residual:.2g})")
    expected = A_inv @ b
    scale = float(np.abs(A_inv).max() * np.abs(b).max())
    gap = float(np.abs(theta - expected).max())
    if not gap <= tolerance * max(scale, 1e-300):
        raise ValueError(f"state['theta'] is not A_inv @ b (max gap {gap:.3g})")


def joint_linucb(
    action_dim: int,
    context_dim: int,
    *,
    alpha: float,
    l2_lambda: float = 1.0,
    gamma: float = 1.0,
    shrinkage: float = DEFAULT_SHRINKAGE,
) -> LinUCB:
    """UniScale's bandit over ``z ⊗ c`` (``action_dim * context_dim`` coordinates), its interactions shrunk
    ``shrinkage`` times harder than its main effects (:func:`interaction_ridge_scale`)."""
    scale = interaction_ridge_scale(action_dim, context_dim, shrinkage)
    return LinUCB(action_dim * context_dim, alpha=alpha, l2_lambda=l2_lambda, gamma=gamma, ridge_scale=scale)


class LinUCBPolicy(Policy):
    """UniScale's choice: LinUCB over the joint features ``z_a ⊗ c_t``, behind the Policy contract."""

    def __init__(self, bandit: LinUCB, name: str = "UniScale"):
        super().__init__(name)
        self.bandit = bandit

    def _select(self, features: ProductFeatures, hindsight: Sequence[float] | None) -> int:
        return self.bandit.select(features)

    def _learn(self, features: ProductFeatures, arm: int, reward: float) -> None:
        self.bandit.update(features.row(arm), reward)

    def estimates(self, features: ProductFeatures) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Each configuration's estimated reward (mean), uncertainty (width) and upper confidence bound."""
        mean, width = self.bandit.scores(features)
        return mean, width, mean + self.bandit.alpha * width

    @classmethod
    def _unit_test_params(cls, context: PolicyContext) -> Iterator[dict[str, Any]]:
        for params in LinUCB._unit_test_params():
            yield {"bandit": LinUCB(context.dim, **params)}
