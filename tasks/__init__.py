"""Task plugins: one folder per task family (readers, evaluator, metrics, stages).

Importing this package imports nothing else: the registries find every module and folder
here by name (``harness.core.registry.plugin_modules``), so scoring a pair of texts never
loads a video decoder, and a new task family is one new folder.
"""
