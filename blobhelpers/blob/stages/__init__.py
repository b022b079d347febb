"""The blob wing's stage cards: one module per pipeline stage, each declaring ``CARD``.

A card (:class:`blobhelpers.core.stagecard.StageCard`) names the stage's headline metrics, the
checks of its verdict box and its verdict sentence. Each stage's notebook imports only its own card,
so editing one card reruns that stage and the index only; this package imports none of them.

Modules: crosssim, data_prep, evaluate, isr_recipe, monitor, train.
"""
