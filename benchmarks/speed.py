#!/usr/bin/env python
"""Speed of the parallel 1D-CNN: training and inference records per second, grouped vs looped.

    python -m benchmarks.speed [--classes 24] [--length 10000] [--batch 8] [--repeats 5]
                               [--threads 1] [--device auto] [--amp]

Prints a table of the median over ``--repeats`` timed runs (after one warm-up) of:

- training: one optimiser step (forward, BCE loss, backward, Adam) of the batched network;
- inference: a forward pass without gradients;
- grouped vs looped: the batched network against ``--classes`` separate branch modules run in
  a Python loop (the same weights, the same outputs), forward and forward+backward.

Random inputs stand in for records (the network's cost does not depend on the values); data
loading is not included (it is cached, see ``team_code.nn.cache``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", type=int, default=24, help="branches (default 24)")
    parser.add_argument("--length", type=int, default=10000, help="samples per lead")
    parser.add_argument("--filters", type=int, default=64, help="channels per branch")
    parser.add_argument("--batch", type=int, default=8, help="records per batch")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA only)")
    return parser


def _median_seconds(step, repeats: int, sync) -> float:
    step()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(args: argparse.Namespace) -> int:
    """Run the measurements and print the table."""
    import torch

    from team_code.classifiers.parallel_cnn import (
        LoopedParallelCNN,
        ParallelCNN,
        count_parameters,
        grouped_from_branches,
    )
    from team_code.nn.device import autocast, pick_device

    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    options = dict(filters=args.filters)
    grouped = ParallelCNN(args.classes, args.length, **options).to(device)
    looped = LoopedParallelCNN(args.classes, args.length, **options).to(device)
    grouped_from_branches(grouped, list(looped.branches))
    x = torch.randn(args.batch, 12, args.length, device=device)
    y = (torch.rand(args.batch, args.classes, device=device) > 0.8).float()
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def forward(model):
        def run():
            model.eval()
            with torch.no_grad(), autocast(device, args.amp):
                model(x)

        return run

    def forward_backward(model, optimizer=None):
        def run():
            model.train()
            with autocast(device, args.amp):
                loss = loss_fn(model(x).float(), y)
            model.zero_grad(set_to_none=True)
            loss.backward()
            if optimizer is not None:
                optimizer.step()

        return run

    optimizer = torch.optim.Adam(grouped.parameters(), lr=1e-4)
    rows = []
    train_s = _median_seconds(forward_backward(grouped, optimizer), args.repeats, sync)
    infer_s = _median_seconds(forward(grouped), args.repeats, sync)
    rows.append(("training step (grouped, Adam)", train_s, args.batch / train_s))
    rows.append(("inference (grouped)", infer_s, args.batch / infer_s))
    g_fwd = _median_seconds(forward(grouped), args.repeats, sync)
    l_fwd = _median_seconds(forward(looped), args.repeats, sync)
    g_fb = _median_seconds(forward_backward(grouped), args.repeats, sync)
    l_fb = _median_seconds(forward_backward(looped), args.repeats, sync)
    rows += [
        ("forward, grouped", g_fwd, args.batch / g_fwd),
        ("forward, looped", l_fwd, args.batch / l_fwd),
        ("forward+backward, grouped", g_fb, args.batch / g_fb),
        ("forward+backward, looped", l_fb, args.batch / l_fb),
    ]
    print(
        f"device {device}, threads {args.threads}, amp {args.amp and device.type == 'cuda'}, "
        f"{args.classes} branches x {args.filters} filters, input 12 x {args.length}, "
        f"batch {args.batch}, {count_parameters(grouped):,} parameters, "
        f"median of {args.repeats} runs"
    )
    print(f"{'measurement':34s} {'s/batch':>9s} {'records/s':>10s}")
    for name, seconds, rate in rows:
        print(f"{name:34s} {seconds:9.3f} {rate:10.1f}")
    print(
        f"grouped vs looped speedup: forward {l_fwd / g_fwd:.2f}x, "
        f"forward+backward {l_fb / g_fb:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(get_parser().parse_args()))
