"""Draw a Var's computation graph with every node's value and gradient (matplotlib only, no graphviz).

Any scalar autodiff node with ``v``, ``grad`` and ``grad_fn`` (returning ``(parent, local derivative)``
pairs) can be drawn: the ``Var`` a student writes in sheet 1 (the kit ships none; see ``helpers.autodiff``).
The figure is built without pyplot, so a notebook shows it once, as the cell's result.
"""
from __future__ import annotations

from graphlib import TopologicalSorter
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure

from . import style

if TYPE_CHECKING:
    from .data import Splits
    from .history import History

Node = Any  # a node of the notebook's Node class: v, grad, grad_fn (and optionally name, op)

_COLORS = {"leaf": "#dbe9f6", "op": "#fde7c8", "root": "#d5f0d5"}


def _label(node: Node, is_leaf: bool) -> str:
    """'a\\nv=3.00\\ngrad=5.00' for a named leaf; the operation is added for computed nodes."""
    name, op = getattr(node, "name", None), getattr(node, "op", None)
    if is_leaf:
        head = name or "const"
    elif name:
        head = f"{name} ({op})" if op else name
    else:
        head = op or "?"
    return f"{head}\nv={node.v:.2f}\ngrad={node.grad:.2f}"


def graph_order(root: Node) -> list[Node]:
    """Every node ``root`` depends on, each after its parents, read through ``grad_fn`` (no recursion).

    The order comes from the standard library's ``graphlib``: drawing needs only some order with parents
    first, not the kit's own traversal.
    """
    nodes, parents, stack = {id(root): root}, {}, [root]
    while stack:  # collect every node and its parents' ids
        node = stack.pop()
        parents[id(node)] = [id(parent) for parent, _ in node.grad_fn()]
        for parent, _ in node.grad_fn():
            if id(parent) not in nodes:
                nodes[id(parent)] = parent
                stack.append(parent)
    return [nodes[i] for i in TopologicalSorter(parents).static_order()]


def _reading_order(root: Node, parents: dict[int, list[Node]]) -> list[Node]:
    """Nodes in the order one reads the expression: depth first from the output, left operand first."""
    seen, out, stack = set(), [], [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        out.append(node)
        stack.extend(reversed(parents[id(node)]))
    return out


def draw_graph(root: Node, title: str | None = None, show_local: bool = True, max_nodes: int = 60,
               figsize: tuple[float, float] | None = None) -> Figure:
    """Figure of the graph behind ``root``: inputs on the left, ``root`` on the right.

    Each box shows a node's name (or operation), value and gradient; with ``show_local``
    each edge is labelled with the local derivative d(child)/d(parent).
    """
    if not all(hasattr(root, field) for field in ("v", "grad", "grad_fn")):
        raise ValueError(f"draw_graph needs a Node (with v, grad and grad_fn), got {type(root).__name__}.")
    order = graph_order(root)
    if len(order) > max_nodes:
        raise ValueError(f"The graph has {len(order)} nodes, more than max_nodes={max_nodes} can show readably; "
                         "draw a smaller expression or raise max_nodes.")
    # Edges (parent -> child) with the local derivatives of repeated parents (x + x) summed.
    edges: dict[tuple[int, int], float] = {}
    parents: dict[int, list[Node]] = {}
    for node in order:
        parents[id(node)] = []
        for parent, local in node.grad_fn():
            key = (id(parent), id(node))
            if key not in edges:
                parents[id(node)].append(parent)
            edges[key] = edges.get(key, 0.0) + float(local)

    # Layered layout: a node's layer is one more than its deepest parent's.
    layer: dict[int, int] = {}
    for node in order:  # parents come first in topological order
        layer[id(node)] = 1 + max((layer[id(p)] for p in parents[id(node)]), default=-1)
    n_layers = max(layer.values()) + 1
    columns: list[list[Node]] = [[] for _ in range(n_layers)]
    for node in order:
        columns[layer[id(node)]].append(node)
    # Order each column by the mean height of its nodes' neighbours (parents, then children),
    # starting from the reading order of the expression, so that edges cross less.
    children: dict[int, list[Node]] = {id(n): [] for n in order}
    for node in order:
        for p in parents[id(node)]:
            children[id(p)].append(node)
    rank = {id(n): i for i, n in enumerate(_reading_order(root, parents))}
    pos: dict[int, tuple[float, float]] = {}

    def place(column: list[Node], x: int) -> None:
        for i, node in enumerate(column):
            pos[id(node)] = (float(x), (len(column) - 1) / 2.0 - i)

    def mean_height(nodes: list[Node], default: float) -> float:
        return sum(pos[id(n)][1] for n in nodes) / len(nodes) if nodes else default

    for x, column in enumerate(columns):
        column.sort(key=lambda n: rank[id(n)])
        place(column, x)
    for sweep in (range(1, n_layers), range(n_layers - 2, -1, -1), range(1, n_layers)):
        for x in sweep:
            neighbours = parents if sweep.step == 1 else children
            columns[x].sort(key=lambda n: -mean_height(neighbours[id(n)], pos[id(n)][1]))
            place(columns[x], x)

    tallest = max(len(c) for c in columns)
    fig = Figure(figsize=style.fit_figsize(*(figsize or (max(4.0, 2.4 * n_layers), max(2.5, 1.3 * tallest)))))
    ax = fig.subplots()
    boxes = {}
    for node in order:
        is_leaf = not parents[id(node)]
        kind = "root" if node is root else ("leaf" if is_leaf else "op")
        x, y = pos[id(node)]
        boxes[id(node)] = ax.text(x, y, _label(node, is_leaf), ha="center", va="center", fontsize=9,
                                  family="monospace", zorder=3,
                                  bbox=dict(boxstyle="round,pad=0.4", fc=_COLORS[kind], ec="0.3"))
    ax.set_xlim(-0.6, n_layers - 0.4)
    skips = any(layer[id(n)] - layer[id(p)] > 1 for n in order for p in parents[id(n)])
    ax.set_ylim(-tallest / 2.0 - 0.1, tallest / 2.0 + (0.9 if skips else 0.1))  # room for bowed edges
    ax.axis("off")
    ax.set_title(title or f"Computation graph of {getattr(root, 'name', None) or 'the output'}: "
                 "value v and gradient d(output)/d(node)")
    fig.tight_layout()  # before placing edge labels, which are positioned in display coordinates
    to_display, to_data = ax.transData, ax.transData.inverted()
    for node in order:
        for parent in parents[id(node)]:
            (x0, y0), (x1, y1) = pos[id(parent)], pos[id(node)]
            # Edges that skip layers bow upwards so they do not hide behind the nodes in between.
            (p0x, p0y), (p2x, p2y) = to_display.transform((x0, y0)), to_display.transform((x1, y1))
            rad = 0.0
            if x1 - x0 > 1:  # bow about 0.75 of a row's height above the straight line
                bow = to_display.transform((0.0, 0.75))[1] - to_display.transform((0.0, 0.0))[1]
                rad = -2.0 * bow / max(((p2x - p0x) ** 2 + (p2y - p0y) ** 2) ** 0.5, 1e-9)
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0), zorder=1,
                        arrowprops=dict(arrowstyle="-|>", color="0.35", shrinkA=0, shrinkB=0,
                                        connectionstyle=f"arc3,rad={rad}",
                                        patchA=boxes[id(parent)].get_bbox_patch(),
                                        patchB=boxes[id(node)].get_bbox_patch()))
            if show_local:
                # The label sits on the edge: near the consuming node on straight edges (so
                # crossing edges keep apart), at the top of the arc on bowed ones.
                if rad == 0.0:
                    lx, ly = p0x + 0.65 * (p2x - p0x), p0y + 0.65 * (p2y - p0y)
                else:  # midpoint of matplotlib's arc3 Bezier curve
                    lx = (p0x + p2x) / 2 + 0.5 * rad * (p2y - p0y)
                    ly = (p0y + p2y) / 2 - 0.5 * rad * (p2x - p0x)
                ax.text(*to_data.transform((lx, ly)), f"∂={edges[(id(parent), id(node))]:.3g}",
                        ha="center", va="center", fontsize=8, color="0.2", zorder=2,
                        bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.85))
    return fig


def plot_var_fit(history: "History", data: "Splits", xs: np.ndarray, curve: np.ndarray, title: str) -> Figure:
    """One Node network on 1-D data: its training and validation loss per epoch, and the function it fitted."""
    fig = Figure(figsize=(style.MAX_WIDTH_IN, 2.5), layout="constrained")  # two panels across the text width
    loss_ax, fit_ax = fig.subplots(1, 2)
    loss_ax.plot(history.epoch_numbers(), history.train_loss, label="training")
    loss_ax.plot(history.epoch_numbers(), history.val_loss, label="validation")
    loss_ax.set(xlabel="epoch", ylabel="summed squared loss", yscale="log")
    fit_ax.scatter(data.train.X[:, 0], data.train.y[:, 0], s=6, label="training points")
    fit_ax.scatter(data.val.X[:, 0], data.val.y[:, 0], s=6, marker="x", lw=0.6, label="validation points")
    fit_ax.plot(xs, curve, color="black", lw=1.2, label="network")
    fit_ax.set(xlabel="x (standardised)", ylabel="y (standardised)")
    for ax in (loss_ax, fit_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return fig
