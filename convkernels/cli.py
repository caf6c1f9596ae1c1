"""The `convkernels` command."""

import argparse
import json
import sys


def _info(args):
    import convkernels

    info = convkernels.info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    width = max(map(len, info))
    for key, value in info.items():
        if isinstance(value, list):
            value = ", ".join(value)
        print(f"{key:<{width}}  {value}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="convkernels", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser("info", help="what this installation is and runs")
    info.add_argument("--json", action="store_true", help="print as JSON")
    info.set_defaults(run=_info)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
