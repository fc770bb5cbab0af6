"""labeller: turn recorded RGB-D video of objects into labelled datasets.

Packages by role, bottom to top (docs/design.md, "Layout"; import-linter enforces it):
`core` → `formats` → `geometry` → the stages (`track`, `propagate`, `export`, `synth`,
`importers`, `baseline`, `evaluate`) → `annotate` (the Qt-free app model) → `gui`
(PySide6) → `cli`. Only `labeller.gui` imports Qt.
"""

__version__ = "0.1.0"
