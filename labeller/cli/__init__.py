"""Batch stages behind the `labeller` command line, one module per stage.

Each stage module defines a config dataclass, `run(cfg)` (what tests call), and
`add_arguments(parser)` / `main(args)` (what the command line calls). Stage modules keep
heavy imports (open3d, torch) inside functions so `labeller --help` stays fast.
"""
