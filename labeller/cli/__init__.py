"""The `labeller` command line: `main` (the parser and exit codes), one module per
subcommand, and `options` (argparse options generated from the stages' config dataclasses).

Each subcommand module has a docstring (its first line is the command's summary),
`add_arguments(parser)`, `main(args) -> int` and an optional `EXAMPLE` epilog. The stage
itself (its `XConfig` and `run(cfg)`) lives in the stage's package; subcommand modules
keep heavy imports (open3d, torch, Qt) inside functions so `labeller --help` stays fast.
"""
