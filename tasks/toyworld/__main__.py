"""Command line: ``python -m tasks.toyworld --root DIR [--seed N] [--tiny]``."""
import argparse
import time

from .cache import ensure_toyworld
from .spec import ToyWorldSpec


def main(argv=None) -> None:
    """Generate (or find in cache) a ToyWorld and print its data root."""
    parser = argparse.ArgumentParser(description='Generate the ToyWorld synthetic data set.')
    parser.add_argument('--root', help='data root (default: the per-spec cache folder)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--tiny', action='store_true', help='the small spec used by tests')
    args = parser.parse_args(argv)
    spec = ToyWorldSpec.tiny(seed=args.seed) if args.tiny else ToyWorldSpec(seed=args.seed)
    started = time.perf_counter()
    root = ensure_toyworld(spec, args.root)
    print(f'{root}  ({time.perf_counter() - started:.1f} s)')


if __name__ == '__main__':
    main()
