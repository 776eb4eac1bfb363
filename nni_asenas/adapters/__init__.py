"""The NNI front ends: the strategy (:class:`~nni_asenas.adapters.strategy.AseNas`), the tuner
(:class:`~nni_asenas.adapters.tuner.AseNasTuner`) and the trial ledger both keep (``ledger``).

They sit above the domain folders and the NNI tools (:mod:`nni_asenas.nni_tools`); nothing below imports them.
"""
