#!/usr/bin/env python
"""Save torchvision's ImageNet GoogLeNet state dict to a file (run at Docker build time).

``python scripts/fetch_googlenet_weights.py OUT.pth`` downloads ``GoogLeNet_Weights.IMAGENET1K_V1``
through torchvision (the one step of the kit that needs the internet) and writes the plain
state dict with ``torch.save``; ``cwt_googlenet`` reads it back with ``weights_only=True`` from
the path in ``ECG_KIT_GOOGLENET_WEIGHTS``.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Fetch and save; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: fetch_googlenet_weights.py OUT.pth", file=sys.stderr)
        return 2
    import torch
    from torchvision.models import GoogLeNet_Weights

    state = GoogLeNet_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
    out = Path(argv[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    torch.save({k: v.contiguous() for k, v in state.items()}, tmp)
    tmp.replace(out)
    print(f"saved {len(state)} tensors to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
