"""The terminal UI (Textual): screens over the database that ``agenttop serve`` writes.

``agenttop.tui.app.make_app`` builds the app for the CLI and the tests alike. The UI reads
only through ``agenttop.store.queries`` (and the analysis modules' read functions), in
worker threads; it never writes the file.
"""
