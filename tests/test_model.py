import pytest
import torch

from medmtl.encoders import create_encoder
from medmtl.errors import ConfigError
from medmtl.model import MultiTaskModel
from medmtl.tasks import ClassificationTask, ReconstructionTask, SegmentationTask
from medmtl.tasks.base import Task


class _ConsumingTask(ClassificationTask):
    """A head reading another head's output (feature transfer wiring)."""

    def forward(self, features, image, context, batch=None):
        seg = context["segmentation"].softmax(1)[:, 1:].mean(dim=(1, 2, 3))
        return self.head(features) + seg[:, None]


def _encoder():
    return create_encoder("small_cnn", 1, width=8, stages=3)


def test_consumer_runs_after_its_producer():
    consumer = _ConsumingTask("cls", consumes=("segmentation",))
    model = MultiTaskModel(_encoder(), [consumer, SegmentationTask()])
    assert list(model.tasks) == ["segmentation", "cls"]
    out = model(torch.rand(2, 1, 16, 16))
    assert out["cls"].shape == (2, 2)


def test_unknown_consumed_task_and_cycles_are_config_errors():
    with pytest.raises(ConfigError, match="unknown"):
        MultiTaskModel(_encoder(), [ClassificationTask("a", consumes=("nope",))])
    with pytest.raises(ConfigError, match="cycle"):
        MultiTaskModel(_encoder(), [ClassificationTask("a", consumes=("b",)),
                                    ClassificationTask("b", consumes=("a",))])


def test_duplicate_and_missing_tasks():
    with pytest.raises(ConfigError, match="unique"):
        MultiTaskModel(_encoder(), [ClassificationTask("a"), ClassificationTask("a")])
    with pytest.raises(ConfigError, match="at least one"):
        MultiTaskModel(_encoder(), [])


def test_predict_returns_user_facing_outputs():
    model = MultiTaskModel(_encoder(), [ClassificationTask(), SegmentationTask()]).eval()
    pred = model.predict(torch.rand(2, 1, 16, 16))
    assert torch.allclose(pred["classification"].sum(1), torch.ones(2))
    assert pred["segmentation"].shape == (2, 16, 16) and pred["segmentation"].dtype == torch.long


def test_task_is_abstract():
    with pytest.raises(TypeError):
        Task("x", "y")


def test_forward_runs_only_the_requested_heads_and_what_they_consume():
    consumer = _ConsumingTask("cls", consumes=("segmentation",))
    model = MultiTaskModel(_encoder(), [consumer, SegmentationTask(), ReconstructionTask()])
    out = model(torch.rand(2, 1, 16, 16), tasks=["cls"])
    assert set(out) == {"cls", "segmentation"}  # segmentation runs because cls reads it
    assert set(model(torch.rand(2, 1, 16, 16), tasks=["reconstruction"])) == {"reconstruction"}
    assert set(model(torch.rand(2, 1, 16, 16))) == {"cls", "segmentation", "reconstruction"}
    with pytest.raises(ValueError, match="unknown task"):
        model(torch.rand(2, 1, 16, 16), tasks=["nope"])
