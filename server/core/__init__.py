"""The pure core: state machines, ranking, policies and the rules of
categories, workflows, pay and webhooks.

Nothing in this package does I/O, reads the clock or draws random numbers
(``server/core/ruff.toml`` bans the imports); time and randomness come in as
arguments, so all of it is tested with plain synchronous pytest.

Imports ``protocol/`` only; nothing else of ``server/``.
"""
