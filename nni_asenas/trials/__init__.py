"""Trial programs that NNI (or torchrun) runs: ``python -m nni_asenas.trials.<name>``."""
