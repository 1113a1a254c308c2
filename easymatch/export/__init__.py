"""Export: tower SavedModels for TF Serving, exporters, predict, item index.

See docs/export.md.
"""
