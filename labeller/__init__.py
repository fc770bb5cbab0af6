"""labeller: turn recorded RGB-D video of objects into labelled datasets.

The core library. It never imports Qt: the GUI (`gui/`) listens to the document model
defined here, and the batch stages (`pipelines/`) call into it.
"""

__version__ = "0.1.0"
