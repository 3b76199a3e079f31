"""Write deterministic synthetic data in the COCO 2017 and ADE20K layouts.

    python tools/make_synthetic_data.py [--coco data/coco] [--ade data/ade]
        [--only {coco,ade}] [--num-train 40] [--num-val 8] [--size 320] [--seed 0] [--force]

The generator is ``protune_mm.data.synthetic`` (``make_coco``, ``make_ade20k``).
"""
import argparse

from protune_mm.data.synthetic import make_ade20k, make_coco


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write deterministic synthetic data in the COCO 2017 and ADE20K '
                    'layouts, loadable by the stock mmdet / mmseg dataset configs.')
    parser.add_argument('--coco', default='data/coco', help='COCO root (default: data/coco)')
    parser.add_argument('--ade', default='data/ade',
                        help='ADE20K root; images go to <root>/ADEChallengeData2016 '
                             '(default: data/ade)')
    parser.add_argument('--only', choices=['coco', 'ade'], help='write only this dataset')
    parser.add_argument('--num-train', type=int, default=40, help='training images per dataset')
    parser.add_argument('--num-val', type=int, default=8, help='validation images per dataset')
    parser.add_argument('--size', type=int, default=320, help='long image side in pixels')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true',
                        help='rewrite even when a complete set with the same parameters exists')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    jobs = [('COCO', make_coco, args.coco), ('ADE20K', make_ade20k, args.ade)]
    for title, make, root in jobs:
        if args.only and not title.lower().startswith(args.only):
            continue
        try:
            result = make(root, args.num_train, args.num_val, args.size, args.seed,
                          force=args.force)
        except (ValueError, TypeError, FileExistsError) as err:
            raise SystemExit(f'{title}: {err}')
        what = (f'wrote {args.num_train} train + {args.num_val} val images ({result["reason"]})'
                if result['written'] else
                f'skipped: {result["reason"]} (use --force to rewrite)')
        print(f'{title}: {what} -> {result["root"]}')


if __name__ == '__main__':
    main()
