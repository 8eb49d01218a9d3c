"""Rendering shared by the environments: a text table, an image, or a window.

Render modes (``render_mode=`` at construction, as in Gymnasium and PettingZoo):

- ``"ansi"``: ``render()`` returns the environment's text table.
- ``"rgb_array"``: ``render()`` returns an (H, W, 3) uint8 image: one panel per figure (e.g.
  every learner's share and accuracy) over the last ``window`` steps, drawn on matplotlib's
  Agg canvas (no display needed; what ``RecordVideo`` records).
- ``"human"``: the image is shown in a matplotlib window, refreshed at every ``reset()`` and
  ``step()``; ``render()`` returns None. Without a display (matplotlib has only a
  non-interactive backend, e.g. on a server) the text table is printed to standard output
  instead, after one warning.
- ``None``: ``render()`` warns, as Gymnasium does, and returns None.

The figures plotted are the ones the environment's state already holds; :class:`Trace` only
keeps the last ``window`` steps of them.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["RENDER_FPS", "RENDER_MODES", "Renderer", "Trace", "draw"]

RENDER_MODES = (None, "ansi", "rgb_array", "human")
RENDER_FPS = 4  # frames per second of videos and of the window
WINDOW = 200  # steps shown
WIDTH, HEIGHT, DPI = 640, 480, 100
# matplotlib backends that cannot open a window
_NON_INTERACTIVE = {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}


def check_render_mode(render_mode: str | None) -> str | None:
    """``render_mode`` if it is one of ``RENDER_MODES``; else ``ValueError`` naming them."""
    if render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode must be one of {RENDER_MODES}, got {render_mode!r}")
    return render_mode


class Trace:
    """Per-learner figures of the last ``window`` steps: ``add(step, share=(n,), ...)``."""

    def __init__(self, window: int = WINDOW) -> None:
        self.window = window
        self.clear()

    def clear(self) -> None:
        self.steps: deque[int] = deque(maxlen=self.window)
        self.values: dict[str, deque[np.ndarray]] = {}

    def add(self, step: int, **figures: np.ndarray) -> None:
        self.steps.append(int(step))
        for name, v in figures.items():
            self.values.setdefault(name, deque(maxlen=self.window)).append(np.array(v, np.float64))

    def series(self, name: str) -> np.ndarray:
        """(T, n) values of ``name`` over the kept steps."""
        return np.array(self.values[name])


def draw(
    title: str,
    steps: Sequence[int],
    panels: Sequence[tuple[str, np.ndarray, tuple[float, float] | None]],
    labels: Sequence[str],
    width: int = WIDTH,
    height: int = HEIGHT,
) -> np.ndarray:
    """An (height, width, 3) uint8 image: one panel per ``(ylabel, values (T, n), ylim)``, a
    line per learner over ``steps`` (NaN values leave gaps)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    canvas = FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    x = np.asarray(steps)
    for ax, (ylabel, values, ylim) in zip(axes, panels):
        for k, label in enumerate(labels):
            ax.plot(x, values[:, k], label=label, lw=1.5, marker="." if len(x) < 3 else None)
        ax.set_ylabel(ylabel)
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.grid(alpha=0.3)
    axes[0].set_title(title, fontsize=10)
    if len(labels):
        axes[0].legend(loc="upper left", fontsize=7, ncol=min(len(labels), 5))
    axes[-1].set_xlabel("step")
    fig.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


class Renderer:
    """The render modes of one environment.

    Args:
        render_mode: one of ``RENDER_MODES``.
        text: returns the text table.
        image: returns the current image (called only for ``"rgb_array"`` and ``"human"``).
        name: the environment's id, for the warning of ``render()`` without a mode.
    """

    def __init__(
        self,
        render_mode: str | None,
        text: Callable[[], str],
        image: Callable[[], np.ndarray],
        name: str,
    ) -> None:
        self.mode = check_render_mode(render_mode)
        self.text, self.image, self.name = text, image, name
        self._figure = None  # the pyplot window of "human"
        self._display: bool | None = None

    @property
    def records(self) -> bool:
        """Whether the environment should keep a :class:`Trace` (image modes only)."""
        return self.mode in ("rgb_array", "human")

    def render(self) -> str | np.ndarray | None:
        if self.mode is None:
            warnings.warn(
                "You are calling render method without specifying any render mode. You can "
                f'specify the render_mode at initialization, e.g. {self.name}(render_mode="'
                'rgb_array")',
                UserWarning,
                stacklevel=3,
            )
            return None
        if self.mode == "ansi":
            return self.text()
        if self.mode == "rgb_array":
            return self.image()
        self._show()
        return None

    def _show(self) -> None:
        """Show the image in a matplotlib window, or print the text without a display."""
        import matplotlib.pyplot as plt

        if self._display is None:
            self._display = plt.get_backend().lower() not in _NON_INTERACTIVE
            if not self._display:
                warnings.warn(
                    f"render_mode='human' needs a display; matplotlib's backend is "
                    f"{plt.get_backend()!r}, so the text table is printed instead",
                    UserWarning,
                    stacklevel=4,
                )
        if not self._display:
            print(self.text(), flush=True)
            return
        frame = self.image()
        if self._figure is None or not plt.fignum_exists(self._figure.number):
            self._figure = plt.figure(self.name, figsize=(WIDTH / DPI, HEIGHT / DPI), dpi=DPI)
            self._artist = self._figure.add_axes((0, 0, 1, 1)).imshow(frame)
            self._figure.axes[0].set_axis_off()
        else:
            self._artist.set_data(frame)
        plt.pause(1.0 / RENDER_FPS)

    def close(self) -> None:
        if self._figure is not None:
            import matplotlib.pyplot as plt

            plt.close(self._figure)
            self._figure = None


class Rendering:
    """``render_mode`` and ``render()`` of an environment that holds a :class:`Renderer` as
    ``_renderer`` and keeps its image's figures with ``_record()``. The mode may be changed
    after construction (the image starts from then)."""

    _renderer: Renderer

    @property
    def render_mode(self) -> str | None:
        return self._renderer.mode

    @render_mode.setter
    def render_mode(self, mode: str | None) -> None:
        recorded = self._renderer.records
        self._renderer.mode = check_render_mode(mode)
        core = getattr(self, "core", None)
        if self._renderer.records and not recorded and getattr(core, "state", None) is not None:
            self._record()  # an image mode from now on: its first frame is this step

    def render(self) -> str | np.ndarray | None:
        """The text table (``"ansi"``), the image (``"rgb_array"``), or None (``"human"``
        shows it; without a mode it warns)."""
        return self._renderer.render()

    def close(self) -> None:
        """Close the window of ``"human"`` rendering, if one is open."""
        self._renderer.close()
