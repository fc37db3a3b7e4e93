"""The PySide6 user interface: window, panels, item models and dialogs.

Nothing here creates core objects: the composition root (``app.main``) builds them and
passes them in.
"""
