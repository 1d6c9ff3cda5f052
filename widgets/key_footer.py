"""The main screen's footer: the screen's keys on one line, drawn by one widget.

Textual's ``Footer`` makes a widget per key (nine here, each styled with two component
classes) and builds them again after the first frame; on a pty with 10,000 files that was
about 30 ms of the main thread's CPU before the first rows (150 -> 118 ms median with the
footer left out). This draws the same line (compact keys, the command palette's key docked
right behind a ``▏``) in the same theme variables, and keeps what the footer does: a click
on a key presses it, the key under the mouse is highlighted and shows its tooltip. Keys
that do not fit are cut at the palette's key, as the footer's were (it scrolled them with
the wheel; this does not). Binding groups are not drawn as groups (no screen here has one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.strip import Strip
from textual.widget import Widget

if TYPE_CHECKING:
    from textual.screen import Screen


class ShownKey(NamedTuple):
    """One key as the footer draws it, and the cells it takes (``start`` to ``end``)."""

    key: str
    display: str
    description: str
    enabled: bool
    tooltip: str
    start: int
    end: int
    palette: bool = False


class KeyFooter(Widget, can_focus=False):
    ALLOW_SELECT = False
    COMPONENT_CLASSES = {"key-footer--key", "key-footer--description", "key-footer--separator", "key-footer--hover"}
    DEFAULT_CSS = """
    KeyFooter {
        dock: bottom;
        height: 1;
        color: $footer-foreground;
        background: $footer-background;
        .key-footer--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        .key-footer--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
        .key-footer--separator {
            color: $foreground 20%;
        }
        .key-footer--hover {
            color: $footer-key-foreground;
            background: $block-hover-background;
        }
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        #: The keys as last laid out, for the width they were laid out in (None: lay out again).
        self._keys: tuple[ShownKey, ...] | None = None
        self._laid_out_for = -1
        self._hover: ShownKey | None = None

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen) -> None:
        # As Textual's footer: while the app is not focused (a blurred browser tab) the keys stay.
        if not screen.app.app_focus or screen is not self.screen:
            return
        self._keys = None
        self.refresh()

    @property
    def keys(self) -> tuple[ShownKey, ...]:
        """The keys shown, left to right, the palette's last; each with its cells."""
        width = self.size.width
        if self._keys is None or self._laid_out_for != width:
            self._keys = self._lay_out(width)
            self._laid_out_for = width
        return self._keys

    def _lay_out(self, width: int) -> tuple[ShownKey, ...]:
        """The shown bindings (the first of each action, as Textual's footer), placed: one cell
        after each key; the palette's key docked right, one cell from the edge, after its ``▏``."""
        app = self.app
        active = self.screen.active_bindings
        first_of_action: dict[str, tuple] = {}
        for _namespace, binding, enabled, tooltip in active.values():
            if binding.show:
                first_of_action.setdefault(binding.action, (binding, enabled, tooltip))
        palette = active.get(app.COMMAND_PALETTE_BINDING) if app.ENABLE_COMMAND_PALETTE else None
        palette_key = None
        room = width
        if palette is not None:
            binding = palette.binding
            display = app.get_key_display(binding)
            cells = 1 + cell_len(display) + (1 + cell_len(binding.description) if binding.description else 0)
            end = width - 1
            room = max(0, end - cells)
            palette_key = ShownKey(binding.key, display, binding.description, palette.enabled,
                                   binding.tooltip or binding.description, room, end, palette=True)
        keys: list[ShownKey] = []
        x = 0
        for binding, enabled, tooltip in first_of_action.values():
            if x >= room:
                break
            display = app.get_key_display(binding)
            cells = cell_len(display) + (1 + cell_len(binding.description) if binding.description else 0)
            keys.append(ShownKey(binding.key, display, binding.description, enabled, tooltip, x, min(x + cells, room)))
            x += cells + 1
        if palette_key is not None:
            keys.append(palette_key)
        return tuple(keys)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        # What is between the keys is the footer's background alone, as between Textual's key widgets.
        blank = Style.from_color(bgcolor=base.bgcolor)
        key_style = self.get_component_rich_style("key-footer--key")
        description_style = self.get_component_rich_style("key-footer--description")
        segments: list[Segment] = []
        x = 0
        for key in self.keys:
            if key.start > x:
                segments.append(Segment(" " * (key.start - x), blank))
            style = base
            keyed, described = key_style, description_style
            if key is self._hover:
                hover = self.get_component_rich_style("key-footer--hover")
                style = base + hover
                keyed = Style(color=key_style.color, bgcolor=hover.bgcolor, bold=key_style.bold)
                described = Style(color=description_style.color, bgcolor=hover.bgcolor)
            if not key.enabled:
                style += Style(dim=True)
            parts: list[Segment] = []
            if key.palette:
                separator = self.get_component_rich_style("key-footer--separator")
                parts.append(Segment("▏", style + Style(color=separator.color)))
            parts.append(Segment(key.display, style + keyed))
            if key.description:
                parts.append(Segment(f" {key.description}", style + described))
            segments.extend(Segment.adjust_line_length(parts, key.end - key.start, style))
            x = key.end
        return Strip(segments).extend_cell_length(width, blank).crop(0, width)

    def _key_at(self, x: int) -> ShownKey | None:
        return next((key for key in self.keys if key.start <= x < key.end), None)

    def on_mouse_move(self, event: events.MouseMove) -> None:
        key = self._key_at(event.x)
        if key is not self._hover:
            self._hover = key
            self.tooltip = key.tooltip if key is not None and key.tooltip else None
            self.refresh()

    def on_leave(self, event: events.Leave) -> None:
        if self._hover is not None:
            self._hover = None
            self.tooltip = None
            self.refresh()

    def on_mouse_down(self, event: events.MouseDown) -> None:
        key = self._key_at(event.x)
        if key is None:
            return
        if key.enabled:
            self.app.simulate_key(key.key)
        else:
            self.app.bell()


__all__ = ["KeyFooter", "ShownKey"]
