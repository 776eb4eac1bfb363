"""NNI glue: the strategy (AseNas), the tuner (AseNasTuner), the space codec, metric reading and NNI 3.0 fixes."""
