"""Trade-off plots: labels of points that share a cost (a model and its INT8 copy have equal MACs) do not overlap."""

import itertools

import matplotlib.pyplot as plt

from slimvision.report.plots import label_offsets, tradeoff_figure


def _label_boxes(figure):
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    return [text.get_window_extent(renderer) for text in figure.axes[0].texts]


def test_labels_of_points_with_equal_macs_do_not_overlap():
    # trained, pruned, pruned + NKD and INT8: the last three share the pruned model's MACs, with close accuracies
    labels = ["trained fp32", "pruned (no fine-tune)", "pruned + NKD", "pruned + NKD + INT8"]
    figure = tradeoff_figure(labels, [41.0, 20.5, 20.5, 20.5], [0.986, 0.951, 0.985, 0.984], "MACs (M)", "top-1", "accuracy vs MACs")
    try:
        boxes = _label_boxes(figure)
        assert len(boxes) == 4
        for a, b in itertools.combinations(boxes, 2):
            assert not a.overlaps(b), (a, b)
    finally:
        plt.close(figure)


def test_only_labels_closer_than_a_line_are_moved_best_score_on_top():
    # heights in points: two points 3 pt apart share a cost, a third with that cost is far below, a fourth stands alone
    offsets = label_offsets([1.0, 2.0, 2.0, 2.0], [50.0, 200.0, 203.0, 100.0])
    assert offsets[0] == (4, 4) and offsets[2] == (4, 4) and offsets[3] == (4, 4)  # nothing near them: left in place
    assert 203 + 4 - (200 + offsets[1][1]) >= 11  # the lower of the close pair sits a full line below the upper
