"""Qt front end: windows, docks, PyVista views and workers. State lives in ``app.models``."""
