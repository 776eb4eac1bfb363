"""The ASE-NAS method itself: encoding, policy and the ask/tell searcher. Imports no NNI."""
