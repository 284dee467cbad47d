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


def test_stacked_labels_keep_the_best_score_on_top_and_lone_points_keep_the_default_offset():
    offsets = label_offsets([1.0, 2.0, 2.0, 2.0], [0.5, 0.7, 0.9, 0.8])
    assert offsets[0] == (4, 4)
    assert offsets[2][1] > offsets[3][1] > offsets[1][1]  # 0.9 above 0.8 above 0.7
