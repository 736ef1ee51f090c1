"""Features: what the policy sees of a query and of each configuration.

:mod:`~uniscale_integrations.features.query` checks a query (a string or a chat) on its way in,
:mod:`~uniscale_integrations.features.encoder` turns it into a context vector ``c_t`` (over an embedding:
:mod:`~uniscale_integrations.features.static`'s token table by default, or
:mod:`~uniscale_integrations.features.minilm` itself; :mod:`~uniscale_integrations.features.embedders` names them),
:mod:`~uniscale_integrations.features.space` holds the configurations and their feature vectors ``z_a``,
and :mod:`~uniscale_integrations.features.joint` their joint features ``x_{t,a} = z_a ⊗ c_t``.
"""
