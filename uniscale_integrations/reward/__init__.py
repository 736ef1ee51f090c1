"""What an answer cost and what it was worth: eFLOPs (:mod:`~uniscale_integrations.reward.cost`),
per-query caps (:mod:`~uniscale_integrations.reward.budget`) and the reward's weights
(:mod:`~uniscale_integrations.reward.weights`)."""
