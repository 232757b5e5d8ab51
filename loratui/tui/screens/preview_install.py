"""Step 6 Preview's install keys (design §4.6): ^s plans the install off the UI thread (the pick, else the
suggestion, and the Lora folders found), then opens the install dialog and says what it did."""

from __future__ import annotations

from textual import work

from loratui.tui.widgets.job_panel import JobPanel


class PreviewInstall:
    """Mixed into :class:`loratui.tui.screens.preview.PreviewScreen` (a StepScreen: ``say``, ``wizard``)."""

    def action_install(self) -> None:
        if self.query_one(JobPanel).running:
            self.say("The grid is rendering: wait for it (or ^r cancels it), then ^s installs.", "!")
            return
        self._prepare_install()

    @work(thread=True, exclusive=True, group="preview-install", exit_on_error=False)
    def _prepare_install(self) -> None:
        from loratui.tui.screens.install_dialog import install_plan

        plan = install_plan(self.wizard.project)
        self.app.call_from_thread(self._open_install, plan)

    def _open_install(self, plan) -> None:  # noqa: ANN001
        if isinstance(plan, str):
            self.say(plan, "✗")
            return
        from loratui.tui.screens.install_dialog import InstallDialog

        self.app.push_screen(InstallDialog(plan), self._installed)

    def _installed(self, message: str | None) -> None:
        self.say(message or "Nothing installed.")
