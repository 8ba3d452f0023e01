"""`python -m espnet_mtl.bin.setup_recipe egs2/<name>/st1 --src_lang en --tgt_lang de`

Creates a recipe for a new corpus that reads one manifest per split (ESPnet's
`egs2/TEMPLATE/st1/setup.sh`; `espnet_mtl.runner.scaffold` says what it writes).
"""

import argparse
import sys

from espnet_mtl.runner.scaffold import ScaffoldError, create_recipe


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe_dir", help="the new recipe folder, egs2/<name>/st1")
    p.add_argument("--src_lang", required=True)
    p.add_argument("--tgt_lang", required=True)
    p.add_argument("--train_set", default="train")
    p.add_argument("--valid_set", default="dev")
    p.add_argument("--test_sets", default="test", help="space- or comma-separated")
    p.add_argument("--manifest_dir", default=None,
                   help="where the manifests live (default: downloads/<name>/manifests)")
    p.add_argument("--nbpe", type=int, default=1000, help="SentencePiece size of each side")
    p.add_argument("--ngpu", type=int, default=1)
    p.add_argument("--nj", type=int, default=8)
    p.add_argument("--copy_conf", action="store_true",
                   help="copy the configs instead of linking conf_templates/st")
    args = p.parse_args(argv)
    tests = tuple(t for t in args.test_sets.replace(",", " ").split() if t)
    try:
        recipe = create_recipe(args.recipe_dir, src_lang=args.src_lang, tgt_lang=args.tgt_lang,
                               train_set=args.train_set, valid_set=args.valid_set,
                               test_sets=tests, manifest_dir=args.manifest_dir, nbpe=args.nbpe,
                               ngpu=args.ngpu, nj=args.nj, copy_conf=args.copy_conf)
    except ScaffoldError as e:
        print(f"setup_recipe: error: {e}", file=sys.stderr)
        return 1
    print(f"created {recipe}: put the manifests in place (see {recipe}/README.md), then "
          f"cd {recipe} && ./run.sh")
    return 0


if __name__ == "__main__":
    sys.exit(main())
