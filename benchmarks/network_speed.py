#!/usr/bin/env python3
"""Parameters and forward time per image of f and g, for every arch and size preset.

    python benchmarks/network_speed.py --device cpu --shape 1 28 28 --batch 256
"""

import argparse
import time

import torch

from ctrl_bench.autoencoder import CONV_SIZES, build_autoencoder
from ctrl_bench.device import resolve_device


def per_image_seconds(fn, x, repeats):
    with torch.no_grad():
        fn(x)  # warm-up
        if x.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            fn(x)
        if x.is_cuda:
            torch.cuda.synchronize()
    return (time.perf_counter() - start) / (repeats * len(x))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--shape", nargs=3, type=int, default=[1, 28, 28])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    device = resolve_device(args.device)
    print(f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'} "
          f"({torch.get_num_threads()} threads); image shape {tuple(args.shape)}; batch {args.batch}; float32")
    print("| arch | size | f params | g params | f µs/image | g µs/image |\n|---|---|---|---|---|---|")
    for arch in ("conv", "crate"):
        for size in CONV_SIZES:
            f, g = build_autoencoder(arch, tuple(args.shape), 128, size)
            f, g = f.to(device).eval(), g.to(device).eval()
            x = torch.rand(args.batch, *args.shape, device=device) * 2 - 1
            z = f(x).detach()
            tf, tg = per_image_seconds(f, x, args.repeats), per_image_seconds(g, z, args.repeats)
            count = lambda m: sum(q.numel() for q in m.parameters())  # noqa: E731
            print(f"| {arch} | {size} | {count(f):,} | {count(g):,} | {tf * 1e6:.1f} | {tg * 1e6:.1f} |")


if __name__ == "__main__":
    main()
