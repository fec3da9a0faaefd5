"""kllab.ui.plots: complete figures with titles, shown in a kernel as plotly's own MIME bundle."""

import json

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import torch

from kllab.ui import plots


def test_builders_return_complete_figures():
    figs = [plots.lines(np.arange(3), {"forward": [1, 2, 3], "reverse": torch.tensor([3.0, 2, 1])}, title="a",
                        xlabel="x", ylabel="y", hline=1.0, dashed=("reverse",)),
            plots.bars(["p", "q"], {"forward": [0.2, 0.8]}, title="b"),
            plots.heatmap(np.eye(2), title="c")]
    for fig, title in zip(figs, "abc"):
        assert isinstance(fig, plots.Figure) and isinstance(fig, go.Figure)
        assert fig.layout.title.text == title and len(fig.data) >= 1
    assert figs[0].data[0].line.color == plots.COLORS["forward"] and figs[0].data[1].line.dash == "dash"


def test_bundle_is_what_plotlys_mimetype_renderer_gives():
    fig = plots.lines([0, 1, 2], {"forward": np.array([0.5, 1.5, 2.5])}, title="t", log_y=True)
    ours = fig._bundle()
    theirs = pio.renderers["plotly_mimetype"].to_mimebundle(fig.to_dict())
    assert json.dumps(ours, sort_keys=True) == json.dumps(theirs, sort_keys=True)


def test_show_outside_a_kernel_is_plotlys(monkeypatch):
    fig = plots.bars(["a"], {"x": [1]}, title="t")
    calls = []
    monkeypatch.setattr(go.Figure, "show", lambda self, *a, **k: calls.append((a, k)))
    fig.show()                   # no kernel here: plotly's show, with nothing added
    fig.show(renderer="json")    # an explicit renderer always goes to plotly
    assert calls == [((), {}), ((), {"renderer": "json"})]
