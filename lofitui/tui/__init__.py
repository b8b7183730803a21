"""The Textual app: ``lofitui.tui.app.run_app`` is what ``lofi`` runs."""
