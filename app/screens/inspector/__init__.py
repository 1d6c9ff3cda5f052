"""The inspector: everything one experiment file holds, in tabs, kept live while it is open.

``screen`` is the screen and its loading; ``overview`` and ``run_detail``
build the text of those tabs; ``runs`` turns decoded runs into the Runs
table; the reading itself (no Textual) is ``state.inspection``.
"""

from app.screens.inspector.screen import InspectorScreen
from app.screens.inspector.sections import Section

__all__ = ["InspectorScreen", "Section"]
