"""Searching, whatever the space and the evaluator: the one loop, its result and the reader of starts.

- :func:`run_search` (``loop``): ask a searcher, evaluate, tell, until a stop rule; returns a :class:`SearchResult`.
- :func:`result_document` / :func:`write_result` (``result``): the one ``result.json`` schema and its writer;
  :func:`read_candidates` reads a result's final candidates back.
- :func:`read_initial_architectures` (``initial``): architectures, result files and architecture files as ASE-NAS+
  starts.

No NNI and no torch here; the domain routes (``nasbench``, ``imagenet``) build on it.
"""

from nni_asenas.search.initial import read_initial_architectures
from nni_asenas.search.loop import Query, Searcher, SearchResult, run_search
from nni_asenas.search.result import RESULT_KEYS, read_candidates, result_document, write_result, write_text

__all__ = ["Query", "RESULT_KEYS", "SearchResult", "Searcher", "read_candidates", "read_initial_architectures",
           "result_document", "run_search", "write_result", "write_text"]
