"""Every plot function returns a Figure with titles, labels and the data it was given."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from helpers import plotting
from helpers.experiments import run_grid
from helpers.sweeps import Categorical, LogUniform, run_sweep
from helpers.history import History


def make_history(lr: float = 0.1, seed: int = 0, epochs: int = 4, diverged: bool = False,
                 grad_layers: int = 3) -> History:
    history = History()
    for epoch in range(epochs):  # counted from 0, as the Trainer records them
        loss = 1 / (1 + lr * (epoch + 1)) + 0.02 * seed
        history.append_epoch(epoch=epoch, train_loss=loss, train_acc=1 - loss / 2, val_loss=loss + 0.1,
                             val_acc=0.9 - loss / 2, test_loss=loss + 0.15, test_acc=0.85 - loss / 2)
    history.step_loss = list(2 / (1 + lr * np.arange(40)) + 0.1 * np.sin(np.arange(40)))
    history.grad_norms = {f"layer{i}": [10.0 ** (-i - e) for e in range(epochs)] for i in range(grad_layers)}
    if diverged:
        history.val_loss[-1] = math.inf
        history.diverged = True
    return history


def grid_train(lr: float, seed: int = 0) -> History:
    return make_history(lr, seed, diverged=lr > 1)


@pytest.fixture
def check():
    """Assert the result is a titled Figure; close it afterwards (no pyplot state, but be tidy)."""
    figures = []

    def _check(fig):
        assert isinstance(fig, Figure)
        assert fig.axes, "the figure must have axes"
        titles = [ax.get_title() for ax in fig.axes] + [fig._suptitle.get_text() if fig._suptitle else ""]
        assert any(titles), "the figure must have a title"
        fig.canvas.draw()  # catches errors that only appear when rendering
        figures.append(fig)
        return fig

    yield _check
    import matplotlib.pyplot as plt

    for fig in figures:
        plt.close(fig)


def _texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_plot_history_draws_each_split(check):
    fig = check(plotting.plot_history(make_history(), title="MLP"))
    loss_ax, acc_ax = fig.axes
    assert [line.get_label() for line in loss_ax.lines] == ["training", "validation", "test"]
    assert loss_ax.get_xlabel() == "epoch" and acc_ax.get_ylabel() == "accuracy"
    np.testing.assert_allclose(loss_ax.lines[1].get_ydata(), make_history().val_loss)


def test_plot_history_skips_missing_metrics(check):
    history = History()
    for epoch in (0, 1):
        history.append_epoch(epoch=epoch, train_loss=1.0 / (epoch + 1))  # regression: no accuracy
    fig = check(plotting.plot_history(history))
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 1


def test_plot_runs_from_dict_and_from_grid_with_repeats(check):
    fig = check(plotting.plot_runs({"lr=0.1": make_history(0.1), "lr=1": make_history(1.0)}, y="val_acc"))
    assert [line.get_label() for line in fig.axes[0].lines] == ["lr=0.1", "lr=1"]

    frame = run_grid(grid_train, {"lr": [0.1, 0.5, 2.0]}, repeats=2, quiet=True)
    fig = check(plotting.plot_runs(frame, y="val_loss", hue="lr", logy=True))
    ax = fig.axes[0]
    assert len(ax.lines) == 3, "repeats of one setting are pooled into one mean line"
    assert ax.lines[2].get_label() == "lr=2.0 (2 diverged)"
    expected = np.mean([make_history(0.1, s).val_loss for s in (0, 1)], axis=0)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), expected)
    assert len(ax.collections) == 3, "a std band per setting"
    # Without hue, the grid's parameter columns (frame.attrs) label the lines.
    fig = check(plotting.plot_runs(frame))
    assert fig.axes[0].lines[0].get_label() == "lr=0.1"


def test_plot_runs_step_losses_with_moving_average(check):
    history = make_history()
    fig = check(plotting.plot_runs({"adam": history}, x="step", smooth=5))
    ydata = fig.axes[0].lines[0].get_ydata()
    assert len(ydata) == 40 and fig.axes[0].get_xlabel() == "optimisation step"
    assert ydata[10] == pytest.approx(np.mean(history.step_loss[6:11]))


def test_plot_runs_rejects_unknown_metric():
    with pytest.raises(ValueError, match="Unknown per-epoch metric"):
        plotting.plot_runs({"a": make_history()}, y="validation_loss")


def _fixed_linear(weight) -> nn.Module:
    layer = nn.Linear(len(weight[0]), len(weight))
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight, dtype=torch.float32))
        layer.bias.zero_()
    return layer


def test_decision_boundary_shows_the_model_regions(check):
    X = torch.tensor([[-1.0, -1.0], [-0.5, 1.0], [0.5, 0.2], [1.0, -1.0]])
    y = torch.tensor([1, 1, 0, 0])
    model = _fixed_linear([[1.0, 0.0], [-1.0, 0.0]])  # class 0 right of x1=0, class 1 left
    fig = check(plotting.plot_decision_boundary(model, X, y, class_names=["east", "west"], resolution=50))
    regions = np.asarray(fig.axes[0].images[0].get_array())
    assert (regions[:, :20] == 1).all() and (regions[:, -20:] == 0).all()
    assert "100.0%" in fig.axes[0].get_title()
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["east", "west"]


def test_decision_boundary_many_classes_binary_and_features(check):
    torch.manual_seed(0)
    X = torch.randn(200, 2)
    fig = check(plotting.plot_decision_boundary(nn.Linear(2, 33), X, torch.randint(0, 33, (200,)),
                                                class_names=[str(i) for i in range(33)], resolution=60,
                                                xlabel="longitude", ylabel="latitude"))
    assert fig.axes[0].get_legend() is None and len(_texts(fig)) >= 2, "many classes: regions are labelled"
    binary = _fixed_linear([[0.0, 1.0]])  # one logit: class 1 above x2=0
    fig = check(plotting.plot_decision_boundary(binary, X, (X[:, 1] > 0).long(), resolution=40))
    assert "100.0%" in fig.axes[0].get_title()
    sin_model = _fixed_linear([[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, -1.0, 0.0]])
    fig = check(plotting.plot_decision_boundary(sin_model, X, (X[:, 0] < 0).long(), resolution=40,
                                                feature_fn=lambda p: torch.cat([p, torch.sin(p)], 1)))
    assert "100.0%" in fig.axes[0].get_title()


def test_heatmap_annotates_mean_and_std(check):
    mean = pd.DataFrame([[0.1, 0.2], [0.3, math.inf]], index=pd.Index([1, 2], name="depth"),
                        columns=pd.Index([5, 10], name="width"))
    fig = check(plotting.plot_heatmap(mean, mean / 10, title="Test loss", fmt=".2f"))
    assert "0.10\n± 0.01" in _texts(fig) and "n/a" in _texts(fig)
    assert fig.axes[0].get_xlabel() == "width" and fig.axes[0].get_ylabel() == "depth"


def test_image_grid_one_per_class_grayscale_and_rgb(check):
    labels = torch.tensor([3, 1, 1, 0, 2, 4, 5, 6, 7, 8, 9, 0])
    images = torch.randn(12, 1, 8, 8)
    names = [f"c{i}" for i in range(10)]
    fig = check(plotting.plot_image_grid(images, labels, names, one_per_class=True))
    shown = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in shown] == names
    assert shown[0].images[0].get_array().ndim == 2 and shown[0].images[0].get_cmap().name == "gray"
    rgb = check(plotting.plot_image_grid(torch.randn(4, 3, 8, 8), [0, 1, 0, 1], ["a", "b"], nrows=1, ncols=4,
                                         mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)))
    array = rgb.axes[0].images[0].get_array()
    assert array.shape == (8, 8, 3) and 0 <= array.min() and array.max() <= 1


def test_misclassified_captions(check):
    true = np.array([0, 1, 2, 1])
    pred = np.array([0, 2, 2, 0])
    fig = check(plotting.plot_misclassified(torch.randn(4, 1, 6, 6), true, pred, ["a", "b", "c"]))
    assert [ax.get_title() for ax in fig.axes if ax.images] == ["true: b\npred: c", "true: b\npred: a"]
    check(plotting.plot_misclassified(torch.randn(2, 1, 6, 6), [0, 1], [0, 1], ["a", "b"]))


def test_confusion_matrix_counts(check):
    fig = check(plotting.plot_confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], ["a", "b", "c"]))
    counts = np.asarray(fig.axes[0].images[0].get_array())
    np.testing.assert_array_equal(counts, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert "66.7%" in fig.axes[0].get_title()
    check(plotting.plot_confusion_matrix(torch.tensor([0, 1]), torch.tensor([1, 1]), ["a", "b"], normalize=True))


def test_grad_norms_side_by_side_share_y(check):
    fig = check(plotting.plot_grad_norms({"plain": make_history(), "residual": make_history(grad_layers=5)},
                                         title="Vanishing gradients"))
    plain, residual = fig.axes
    assert plain.get_yscale() == "log" and residual.get_shared_y_axes().joined(plain, residual)
    assert len(plain.lines) == 3 and len(residual.lines) == 5
    check(plotting.plot_grad_norms(make_history(), layers=["layer0"]))
    with pytest.raises(ValueError, match="No gradient norms recorded"):
        plotting.plot_grad_norms(History())


def test_bars_and_lines_from_tables(check):
    table = pd.DataFrame({"device": ["cpu", "cpu", "cuda", "cuda"] * 2, "batch_size": [32, 512] * 4,
                          "seconds": [4.0, 1.0, 0.5, 0.1, 4.2, 1.2, 0.5, 0.1]})
    fig = check(plotting.plot_bars(table, x="batch_size", y="seconds", hue="device", ylabel="time (s)"))
    bars = fig.axes[0].patches
    assert len(bars) == 4 and bars[0].get_height() == pytest.approx(4.1)
    fig = check(plotting.plot_lines(table, x="batch_size", y="seconds", hue="device", logx=True))
    assert [line.get_label() for line in fig.axes[0].lines] == ["cpu", "cuda"]
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), [4.1, 1.1])
    with pytest.raises(ValueError, match="not in the DataFrame"):
        plotting.plot_bars(table, x="batch", y="seconds")


@pytest.fixture
def study():
    def objective(params, number):
        return make_history(params["lr"], diverged=params["lr"] > 0.5)

    space = {"lr": LogUniform(1e-3, 1.0), "opt": Categorical(["sgd", "adam"])}
    return run_sweep(objective, space, n_trials=8, sampler="random", storage="memory", seed=1, quiet=True)


def test_sweep_plots(check, study):
    n_diverged = sum(t.user_attrs["diverged"] for t in study.trials)
    assert 0 < n_diverged < 8, "the fixture should contain both kinds of trials"
    fig = check(plotting.plot_trial_curves(study))
    assert len(fig.axes[0].lines) == 8 and any("best" in line.get_label() for line in fig.axes[0].lines)
    fig = check(plotting.plot_parallel_coordinates(study))
    trial_lines = [line for line in fig.axes[0].lines if len(line.get_xdata()) == 3]  # lr, opt, score
    assert len(trial_lines) == 8 and sum(line.get_linestyle() == "--" for line in trial_lines) == n_diverged
    assert {"sgd", "adam", "diverged"} <= set(_texts(fig))
    check(plotting.plot_parallel_coordinates(study, metric="val_acc"))
    fig = check(plotting.plot_param_importances(study))
    assert sorted(t.get_text() for t in fig.axes[0].get_yticklabels()) == ["lr", "opt"]
    assert sum(bar.get_width() for bar in fig.axes[0].patches) == pytest.approx(1.0)


def test_plot_runs_per_epoch_metric_against_steps(check):
    # 40 steps over 4 epochs: the epoch-end points sit at steps 10, 20, 30, 40.
    history = make_history()
    fig = check(plotting.plot_runs({"b": history}, x="step", y="val_acc", logx=True))
    line = fig.axes[0].lines[0]
    assert list(line.get_xdata()) == [10, 20, 30, 40] and list(line.get_ydata()) == history.val_acc
    assert fig.axes[0].get_xscale() == "log" and fig.axes[0].get_ylabel() == "validation accuracy"
    from matplotlib.ticker import LogLocator

    assert isinstance(fig.axes[0].xaxis.get_major_locator(), LogLocator), "the step axis keeps its log ticks"


def test_grad_norms_wrap_into_rows_that_fit_a_page_and_name_zero_panels(check):
    zero = make_history()
    zero.grad_norms = {name: [0.0] * len(values) for name, values in zero.grad_norms.items()}
    runs = {"plain": zero, "residual": make_history(), "batch norm": make_history(), "both": make_history()}
    fig = check(plotting.plot_grad_norms(runs, layers=["layer0", "layer2"]))
    assert fig.get_figwidth() <= 6.5, "two panels to a row fit an A4 text width"
    drawn = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    assert len(drawn) == 4 and len({round(ax.get_position().y0, 3) for ax in drawn}) == 2, "2 rows of 2"
    assert "every gradient is exactly 0" in [t.get_text() for t in drawn[0].texts]
    assert not drawn[1].texts, "a panel with gradients draws them instead"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["layer0", "layer2"]
    odd = check(plotting.plot_grad_norms({k: runs[k] for k in list(runs)[:3]}))
    assert sum(ax.axison for ax in odd.axes) == 3, "the unused fourth panel is hidden"


def test_decision_boundary_names_only_the_largest_regions(check):
    # Class k owns the vertical stripe x in [k, k+1) of width k+1 after the map below: the widest stripes
    # are the highest classes, so label_top=3 names exactly the last three.
    edges = np.cumsum(np.arange(1, 15))

    class Stripes(nn.Module):
        def forward(self, x):
            k = torch.bucketize(x[:, 0].contiguous(), torch.tensor(edges, dtype=torch.float32), right=True)
            return nn.functional.one_hot(k.clamp(max=13), 14).float()

    X = torch.stack([torch.linspace(0, edges[-1] - 0.01, 300), torch.zeros(300)], 1)
    names = [f"c{i}" for i in range(14)]
    fig = check(plotting.plot_decision_boundary(Stripes(), X, Stripes()(X).argmax(1), names, resolution=200,
                                                label_top=3))
    assert sorted(_texts(fig)) == ["c11", "c12", "c13"]
    assert fig.get_figwidth() <= 6.5


def test_trial_curves_call_the_highest_accuracy_best(check, study):
    # For accuracy the best trial is the one with the *highest* final value, whatever the study minimised.
    fig = check(plotting.plot_trial_curves(study, metric="val_acc"))
    finished = [t for t in study.trials if t.state.name == "COMPLETE" and not t.user_attrs["diverged"]]
    best = max(finished, key=lambda t: t.user_attrs["history"]["val_acc"][-1])
    labels = [line.get_label() for line in fig.axes[0].lines if "best" in line.get_label()]
    assert labels == [f"best (trial {best.number})"]
    fig = check(plotting.plot_trial_curves(study, metric=("train_loss", "val_loss", "val_acc")))
    curve_axes = [ax for ax in fig.axes if ax.lines]
    assert len(curve_axes) == 3 and all(len(ax.lines) == 8 for ax in curve_axes)


def test_param_effects_give_the_direction_of_each_hyperparameter(check):
    def objective(params, number):  # the loss falls with lr; batch size does nothing
        return make_history(params["lr"] * 10)

    space = {"lr": LogUniform(1e-3, 1.0), "batch_size": Categorical([32, 64, 128])}
    study = run_sweep(objective, space, n_trials=12, sampler="random", storage="memory", seed=0, quiet=True)
    effects = plotting.param_effects(study)
    assert effects.loc["lr", "spearman with val_loss"] == pytest.approx(-1.0)
    from scipy.stats import spearmanr

    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    expected = spearmanr([t.params["batch_size"] for t in done], [t.value for t in done]).statistic
    assert effects.loc["batch_size", "spearman with val_loss"] == pytest.approx(expected)
    assert effects.loc["lr", "importance"] > effects.loc["batch_size", "importance"]
    # Accuracy rises with lr, so its correlation has the opposite sign.
    assert plotting.param_effects(study, metric="val_acc").loc["lr", "spearman with val_acc"] == pytest.approx(1.0)
    fig = check(plotting.plot_param_importances(study))
    assert "-1.00" in _texts(fig)


def test_kit_style_sizes_figures_for_a4_and_tells_ten_lines_apart():
    import matplotlib as mpl

    from helpers import plotting, style   # noqa: F401  (importing plotting applies the style)

    assert mpl.rcParams["font.size"] >= 8 and mpl.rcParams["legend.fontsize"] >= 8
    assert mpl.rcParams["figure.figsize"][0] <= style.MAX_WIDTH_IN
    cycle = list(mpl.rcParams["axes.prop_cycle"])
    assert len({(c["color"], c["linestyle"]) for c in cycle}) == len(cycle) == 10
    assert len(set(style.colors(10))) == 10 and len(set(map(str, style.colors(25)))) >= 20
    assert style.fit_figsize(20.0, 3.6) == (style.MAX_WIDTH_IN, 3.6 * style.MIN_HEIGHT_SCALE)
    assert style.fit_figsize(5.0, 3.6) == (5.0, 3.6)


def test_wide_multi_panel_figure_is_capped_at_the_text_width():
    from helpers import style
    from helpers.plotting import _figure

    fig, axes = _figure(1, 4)
    assert axes.shape == (1, 4)
    assert fig.get_size_inches()[0] <= style.MAX_WIDTH_IN


def test_long_legend_goes_beside_the_axes():
    from matplotlib.figure import Figure

    from helpers import style

    fig = Figure(layout="constrained")
    long_ax, short_ax = fig.subplots(1, 2)
    for i in range(8):
        long_ax.plot([0, 1], [i, i], label=f"line {i}")
    short_ax.plot([0, 1], [0, 1], label="one line")
    style.legend(long_ax)
    style.legend(short_ax)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    # Eight entries: the legend starts right of the axes; one entry: it stays inside them.
    assert long_ax.get_legend().get_window_extent(renderer).x0 >= long_ax.get_window_extent(renderer).x1
    assert short_ax.get_legend().get_window_extent(renderer).x1 <= short_ax.get_window_extent(renderer).x1


def test_epoch_axes_count_from_one_like_the_text():
    from helpers.plotting import plot_history
    from helpers.history import History

    h = History()
    for e in range(3):
        h.append_epoch(epoch=e, train_loss=1.0 / (e + 1), val_loss=1.2 / (e + 1))
    fig = plot_history(h, metrics="loss")
    assert list(fig.axes[0].lines[0].get_xdata()) == [1, 2, 3]


def sparse_history() -> History:
    """A History that logged every 10th of 1000 epochs and the last one, like sheet 1's Var fits."""
    h = History()
    for epoch in [*range(0, 1000, 10), 999]:
        h.append_epoch(epoch=epoch, train_loss=1.0 / (epoch + 1), val_loss=1.5 / (epoch + 1))
    h.step_loss = [1.0] * 1000   # one step per epoch
    return h


def test_epoch_axes_come_from_the_record_when_a_history_logs_every_10th_epoch():
    from helpers.autodiff_plot import plot_var_fit
    from helpers.optim_demos import compare_runs, first_epoch_reaching
    from helpers.synthetic import course_regression_1d

    h = sparse_history()
    assert list(h.epoch_numbers()[:3]) == [1, 11, 21] and h.epoch_numbers()[-1] == 1000
    for fig in (plotting.plot_history(h, metrics="loss"), plotting.plot_runs({"var": h}, y="val_loss"),
                plot_var_fit(h, course_regression_1d(), np.zeros(2), np.zeros(2), "Var fit")):
        xs = fig.axes[0].lines[0].get_xdata()
        assert list(xs[:2]) == [1, 11] and xs[-1] == 1000, "the axis ends at the History's last epoch, not at 101"
    steps = plotting.plot_runs({"var": h}, x="step", y="val_loss").axes[0].lines[0].get_xdata()
    assert list(steps[:2]) == [1, 11] and steps[-1] == 1000, "one step per epoch: epoch-end points at those steps"
    h.val_acc = [min(1.0, e / 500) for e in h.epoch]
    assert first_epoch_reaching(h, "val_acc", 0.5) == 251
    h.train_acc = list(h.val_acc)
    assert compare_runs({"var": h}, target_acc=0.5).loc["lowest val loss (epoch)", "var"].endswith("(1000)")


def test_a_history_without_epoch_numbers_is_refused_by_name():
    h = History()
    h.append_epoch(train_loss=1.0)
    with pytest.raises(ValueError, match="append_epoch\\(epoch="):
        h.epoch_numbers()


def test_one_text_width_feeds_the_pdf_layout_and_the_figures_without_loading_matplotlib():
    import subprocess
    import sys

    from helpers import style
    from helpers.export import layout

    assert layout.TEXT_WIDTH_MM == style.TEXT_WIDTH_MM == 182.0
    assert style.MAX_WIDTH_IN < style.TEXT_WIDTH_IN
    code = "import sys, helpers.export.layout; sys.exit('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0, "the page geometry must not load matplotlib"
