"""``nni-asenas nni-patch apply | revert | status``: fix, undo or check NNI 3.0's trial listing.

NNI 3.0 can list a trial with another trial's parameters when several trials start together (web UI, "Copy as
json", ``/api/v1/nni/trial-jobs``, ``nnictl experiment export``). ``apply`` rewrites the one NNI file at fault
(``nni_node/training_service/v3/compat.js`` of the NNI this Python imports; only NNI 3.0's exact file, checked by
sha256) and keeps the original next to it; ``revert`` restores the original byte for byte. Both are idempotent.
Experiments started before ``apply`` keep the old code until they are stopped and resumed.
See :mod:`nni_asenas.nni_tools.nni_patch` for how the fix works.

Exit status: 0 done (also when there was nothing to do); for ``status``: 0 applied, 1 not applied (NNI 3.0's
original file), 2 not applicable (another file, or no NNI); 2 on any error, with one line naming the file.
"""

from __future__ import annotations

import argparse
from typing import Any

ACTIONS = ("apply", "revert", "status")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "nni-patch",
        help="fix NNI 3.0's trial listing (explicit, reversible patch of one NNI file)",
        description="Fix (apply), undo (revert) or check (status) the patch that makes NNI 3.0 list every trial "
        "with the parameters it ran. It changes nni_node/training_service/v3/compat.js of the NNI this Python "
        "imports, only if that file is NNI 3.0's exact original, and keeps the original for revert.",
    )
    parser.add_argument("action", choices=ACTIONS, help="apply the patch, revert it, or report its status")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nni_asenas.nni_tools import nni_patch

    if args.action == "status":
        found = nni_patch.status()
        print(f"nni-patch: {found.describe()}")
        return {"patched": 0, "original": 1}.get(found.state, 2)
    if args.action == "apply":
        found, changed = nni_patch.apply()
        if changed:
            print(f"nni-patch: applied to {found.path} (original kept as {found.backup}); "
                  "experiments started from now on list every trial with the parameters it runs")
        else:
            print(f"nni-patch: already applied to {found.path}; nothing changed")
        return 0
    found, changed = nni_patch.revert()
    if changed:
        print(f"nni-patch: reverted {found.path} to NNI 3.0's original (sha256 {found.sha256})")
    else:
        print(f"nni-patch: {found.path} is NNI 3.0's original already; nothing changed")
    return 0
