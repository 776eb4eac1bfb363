"""NNI tools below the domain code: NNI 3.0 fixes (``compat``), the model-space codec (``space_codec``), reading
metrics (``metrics``), the trial side of NNI's API (``trial_api``), search-space JSON (``search_space_json``) and
the operations tool that patches NNI's trial listing on request (``nni_patch``, imported only when used).

``nasbench``, ``imagenet`` and ``trials`` build on these; the strategy and the tuner (``nni_asenas.adapters``) sit
above all of them. Nothing here imports the domain folders, the adapters or the CLI.
"""
