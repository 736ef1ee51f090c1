"""Policies: which configuration to run for a query, learned from rewards.

Every policy keeps one contract (:mod:`~uniscale_integrations.policy.base`); UniScale's is LinUCB over
the joint features (:mod:`~uniscale_integrations.policy.linucb`), the baselines it is compared with are
in :mod:`~uniscale_integrations.policy.baselines`, and :mod:`~uniscale_integrations.policy.replica` keeps
the engine's LinUCB equal to the replay of the store's feedback log.
"""

from uniscale_integrations.policy.base import Policy, PolicyContext
from uniscale_integrations.policy.baselines import KNN, Fixed, Greedy, Oracle, RandomPolicy
from uniscale_integrations.policy.linucb import LinUCB, LinUCBPolicy

__all__ = ["KNN", "Fixed", "Greedy", "LinUCB", "LinUCBPolicy", "Oracle", "Policy", "PolicyContext", "RandomPolicy"]
