"""``e``: the station editor. Prompt, engine, model, duration and the chosen engine's own
parameters, set from the app; dismissed with a :class:`StationEdit` (Apply: the new station,
and whether to save it as config.toml's default) or None (Esc).

The fields come from the engines' declarations (:mod:`lofitui.tui.station_form`): switching the
engine swaps the parameter fields, and what was typed for the other engine is kept until the
editor closes. Apply checks every field with the validators the command line uses; a field that
is wrong says why on the line below it and nothing is applied.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Label, Select, Static, TextArea

from lofitui.engines.base import Param
from lofitui.engines.registry import ENGINES
from lofitui.events import Station
from lofitui.tui.station_form import (
    GENERAL_FIELDS,
    ModelChoice,
    StationEdit,
    build_station,
    default_problem,
    duration_param,
    form_params,
    model_choices,
    model_problem,
    value_text,
)


def _field(name: str, label: str, widget: Widget) -> Vertical:
    """One labelled field with its (hidden until needed) error line."""
    widget.id = f"field-{name}"
    error = Static("", id=f"error-{name}", classes="field-error", markup=False)
    error.display = False
    row = Horizontal(Label(label, classes="field-label"), widget, classes="field-row")
    return Vertical(row, error, classes="field")


def _param_widget(param: Param, text: str) -> Widget:
    if param.choices is not None:
        value = text if text in param.choices else Select.NULL
        return Select([(c, c) for c in param.choices], value=value, prompt="default", compact=True)
    if param.multiline:
        return TextArea(text, compact=True, placeholder=param.help)
    return Input(text, placeholder=param.help, compact=True)


def _read(widget: Widget) -> str:
    """What a field holds, as text ("" for a Select left at its default)."""
    if isinstance(widget, TextArea):
        return widget.text
    if isinstance(widget, Select):
        return "" if widget.value == Select.NULL else str(widget.value)
    assert isinstance(widget, Input)
    return widget.value


class StationEditor(ModalScreen[StationEdit | None]):
    """Edit ``station``; the result is what to play, or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "apply", "Apply", id="editor.apply"),
        Binding("escape", "cancel", "Cancel", id="editor.cancel"),
    ]

    AUTO_FOCUS = "#field-prompt"

    def __init__(self, station: Station, *, downloading: str | None = None) -> None:
        super().__init__()
        self.station = station
        self.downloading = downloading
        self.engine = station.engine
        self.choices: list[ModelChoice] = model_choices(station.engine, station, downloading)
        # what each engine's parameter fields hold, kept while the listener switches engines
        self._drafts: dict[str, dict[str, str]] = {
            station.engine: {
                p.name: value_text(station.params.get(p.name)) for p in form_params(station.engine)
            }
        }

    # -- layout ------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        station = self.station
        card = Vertical(id="editor-card", classes="dialog")
        card.border_title = "station"
        with card:
            with VerticalScroll(id="editor-form"):
                yield _field("prompt", "prompt", Input(station.prompt, compact=True))
                engines = Select(
                    [(name, name) for name in ENGINES],
                    value=station.engine,
                    allow_blank=False,
                    compact=True,
                )
                yield _field("engine", "engine", engines)
                yield _field("model", "model", self._model_select())
                duration = Input(
                    value_text(station.duration_s),
                    placeholder=duration_param(station.engine).help,
                    compact=True,
                )
                yield _field("duration", "duration (s)", duration)
                yield Vertical(*self._param_fields(), id="engine-fields")
                save = Checkbox("also make this the default (config.toml)", compact=True)
                yield _field("save", "", save)
            problem = Static("", id="editor-problem", markup=False)
            problem.display = False
            yield problem
            with Horizontal(classes="buttons"):
                yield Static("ctrl+s apply · esc cancel", id="editor-hint")
                yield Button("Apply", id="apply", variant="primary", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def _model_select(self) -> Select[str]:
        return Select(
            [(c.label, c.name) for c in self.choices],
            value=self._first_model(),
            allow_blank=False,
            compact=True,
        )

    def _first_model(self) -> str:
        """The model a newly chosen engine starts on: the first one that can play now."""
        return next((c.name for c in self.choices if c.installed), self.choices[0].name)

    def _param_fields(self) -> list[Widget]:
        draft = self._drafts.get(self.engine, {})
        fields: list[Widget] = [Static(f"{self.engine} settings", classes="section")]
        for param in form_params(self.engine):
            widget = _param_widget(param, draft.get(param.name, ""))
            fields.append(_field(param.name, param.label, widget))
        return fields

    # -- engine and model --------------------------------------------------------------------------

    @on(Select.Changed, "#field-engine")
    async def _engine_changed(self, event: Select.Changed) -> None:
        engine = str(event.value)
        if engine == self.engine:
            return
        self._drafts[self.engine] = {
            p.name: _read(self.query_one(f"#field-{p.name}")) for p in form_params(self.engine)
        }
        self.engine = engine
        self.choices = model_choices(engine, self.station, self.downloading)
        models = self.query_one("#field-model", Select)
        models.set_options([(c.label, c.name) for c in self.choices])
        models.value = self._first_model()
        self.query_one("#field-duration", Input).placeholder = duration_param(engine).help
        box = self.query_one("#engine-fields")
        await box.remove_children()
        await box.mount_all(self._param_fields())
        self._show_errors({})

    @on(Select.Changed, "#field-model")
    def _model_changed(self, event: Select.Changed) -> None:
        name = str(event.value)
        choice = next((c for c in self.choices if c.name == name), None)
        self._show_error("model", model_problem(choice, name) or "")

    # -- apply / cancel ----------------------------------------------------------------------------

    def _values(self) -> dict[str, str]:
        names = (*GENERAL_FIELDS, *(p.name for p in form_params(self.engine)))
        values = {name: _read(self.query_one(f"#field-{name}")) for name in names}
        values["engine"] = self.engine
        return values

    @on(Button.Pressed, "#apply")
    @on(Input.Submitted)
    def action_apply(self) -> None:
        station, errors = build_station(self._values(), self.choices, self.station)
        save = self.query_one("#field-save", Checkbox).value
        if station is not None and save and (problem := default_problem(station)) is not None:
            station, errors = None, {"save": f"not the default: {problem}"}
        self._show_errors(errors)
        if station is not None:
            self.dismiss(StationEdit(station, save))
            return
        first = next(iter(errors))
        count = "field says" if len(errors) == 1 else f"{len(errors)} fields say"
        self._show_problem(f"not applied: the marked {count} why")
        self.query_one(f"#field-{first}").focus(scroll_visible=False)
        field = self.query_one(f"#error-{first}").parent
        if isinstance(field, Widget):  # the field and its error line, once the error is laid out
            self.call_after_refresh(field.scroll_visible)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    def _show_errors(self, errors: dict[str, str]) -> None:
        for error in self.query(".field-error"):
            name = (error.id or "").removeprefix("error-")
            self._show_error(name, errors.get(name, ""))
        if not errors:
            self._show_problem("")

    def _show_problem(self, text: str) -> None:
        problem = self.query_one("#editor-problem", Static)
        problem.update(text)
        problem.display = bool(text)

    def _show_error(self, name: str, text: str) -> None:
        error = self.query_one(f"#error-{name}", Static)
        error.update(text)
        error.display = bool(text)
