"""The PySide6 desktop app: views over the core document model."""
