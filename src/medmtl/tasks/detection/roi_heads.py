"""Box, class and mask heads on proposals, with FT-MTL-Net's segmentation-to-classification transfer.

:class:`LesionRoIHeads` subclasses torchvision's ``RoIHeads`` (matching, sampling, box coding,
post-processing and the Fast/Mask R-CNN losses are torchvision's) and adds:

- losses for the images that have targets and detections for all images, in either mode;
- **feature transfer** (Gao et al., FT-MTL-Net): the mask head's last feature map θ₄
  ``[R, C, 14, 14]`` is multiplied by ``M_w = max_k sigmoid(mask logit_k)`` over the lesion
  classes (e.g. max(M_benign, M_malignant)), global max- and average-pooled, and concatenated
  with the RoI's box-head features before the classifier. The mask head then runs on every
  sampled RoI, not only on positives.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.roi_heads import (
    RoIHeads,
    fastrcnn_loss,
    maskrcnn_inference,
    maskrcnn_loss,
    paste_masks_in_image,
)
from torchvision.ops import MultiScaleRoIAlign

Features = OrderedDict[str, torch.Tensor]


@dataclass
class RoIOutput:
    """Per image: boxes ``[N, 4]``, scores ``[N]``, labels ``[N]`` (1..K) and, with a mask head,
    mask probabilities ``[N, H, W]`` pasted into the image."""

    boxes: list[torch.Tensor]
    scores: list[torch.Tensor]
    labels: list[torch.Tensor]
    masks: list[torch.Tensor] | None


class LesionRoIHeads(RoIHeads):
    """RoI heads for ``num_classes`` lesion classes (+ background) over an FPN with ``levels`` maps."""

    def __init__(self, in_channels: int, levels: list[str], num_classes: int, representation: int,
                 mask_head: bool, mask_channels: int, feature_transfer: bool, batch_size_per_image: int,
                 score_thresh: float, nms_thresh: float, detections_per_img: int,
                 canonical_scale: int = 112) -> None:
        if feature_transfer and not mask_head:
            raise ValueError("feature transfer needs the mask head")
        box_pool = MultiScaleRoIAlign(levels, output_size=7, sampling_ratio=2, canonical_scale=canonical_scale)
        box_head = TwoMLPHead(in_channels * 7 * 7, representation)
        extra = 2 * mask_channels if feature_transfer else 0
        predictor = FastRCNNPredictor(representation + extra, num_classes + 1)
        mask_parts: dict[str, nn.Module | None] = {"mask_roi_pool": None, "mask_head": None, "mask_predictor": None}
        if mask_head:
            mask_parts = {
                "mask_roi_pool": MultiScaleRoIAlign(levels, output_size=14, sampling_ratio=2,
                                                    canonical_scale=canonical_scale),
                "mask_head": MaskRCNNHeads(in_channels, (mask_channels,) * 4, dilation=1),
                "mask_predictor": MaskRCNNPredictor(mask_channels, mask_channels, num_classes + 1),
            }
        super().__init__(box_pool, box_head, predictor, fg_iou_thresh=0.5, bg_iou_thresh=0.5,
                         batch_size_per_image=batch_size_per_image, positive_fraction=0.25,
                         bbox_reg_weights=None, score_thresh=score_thresh, nms_thresh=nms_thresh,
                         detections_per_img=detections_per_img, **mask_parts)
        self.feature_transfer = feature_transfer

    def check_targets(self, targets: list[dict[str, torch.Tensor]] | None) -> None:
        """Like torchvision's, but a target may lack ``masks`` (partial labels)."""
        if targets is None or not all("boxes" in t and "labels" in t for t in targets):
            raise ValueError("every detection target needs 'boxes' and 'labels'")

    # -- shared pieces ---------------------------------------------------------------------
    def _mask_features(self, features: Features, boxes: list[torch.Tensor],
                       shapes: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """θ₄ ``[R, C, 14, 14]`` and mask logits ``[R, K+1, 28, 28]`` of the boxes."""
        theta = self.mask_head(self.mask_roi_pool(features, boxes, shapes))
        return theta, self.mask_predictor(theta)

    @staticmethod
    def transferred(theta: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
        """FT-MTL-Net: ``[R, 2C]`` = (global max, global mean) of ``θ₄ · M_w``."""
        weight = mask_logits[:, 1:].sigmoid().amax(dim=1, keepdim=True)
        weight = F.adaptive_avg_pool2d(weight, theta.shape[-2:])
        weighted = theta * weight
        return torch.cat([weighted.amax(dim=(2, 3)), weighted.mean(dim=(2, 3))], dim=1)

    def _classify(self, features: Features, boxes: list[torch.Tensor], shapes: list[tuple[int, int]]
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Class logits ``[R, K+1]``, box deltas ``[R, 4(K+1)]`` and (with transfer) mask logits."""
        representation = self.box_head(self.box_roi_pool(features, boxes, shapes))
        mask_logits = None
        if self.feature_transfer:
            theta, mask_logits = self._mask_features(features, boxes, shapes)
            representation = torch.cat([representation, self.transferred(theta, mask_logits)], dim=1)
        class_logits, box_deltas = self.box_predictor(representation)
        return class_logits, box_deltas, mask_logits

    # -- losses ----------------------------------------------------------------------------
    def losses(self, features: Features, proposals: list[torch.Tensor], shapes: list[tuple[int, int]],
               targets: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """``roi_class``, ``roi_box`` (and ``mask``) on sampled proposals of labelled images.

        ``features`` and ``proposals`` hold only those images; a target may lack ``masks`` (no
        mask for that image): its RoIs are then left out of the mask loss.
        """
        sampled, matched, labels, regression_targets = self.select_training_samples(
            [p.detach() for p in proposals], targets)
        class_logits, box_deltas, mask_logits = self._classify(features, sampled, shapes)
        loss_class, loss_box = fastrcnn_loss(class_logits, box_deltas, labels, regression_targets)
        losses = {"roi_class": loss_class, "roi_box": loss_box}
        if self.has_mask():
            losses["mask"] = self._mask_loss(features, sampled, shapes, targets, matched, labels, mask_logits)
        return losses

    def _mask_loss(self, features: Features, sampled: list[torch.Tensor], shapes: list[tuple[int, int]],
                   targets: list[dict[str, torch.Tensor]], matched: list[torch.Tensor], labels: list[torch.Tensor],
                   mask_logits: torch.Tensor | None) -> torch.Tensor:
        positive = [(lab > 0) & ("masks" in t) for lab, t in zip(labels, targets)]
        if mask_logits is None:  # standard Mask R-CNN: the mask head sees positive RoIs only
            boxes = [s[p] for s, p in zip(sampled, positive)]
            logits = self._mask_features(features, boxes, shapes)[1]
        else:
            logits = mask_logits[torch.cat(positive)]
        with_masks = [i for i, t in enumerate(targets) if "masks" in t]
        if not with_masks or logits.shape[0] == 0:
            return logits.sum() * 0.0
        counts = [int(p.sum()) for p in positive]
        pieces = logits.split(counts)
        return maskrcnn_loss(torch.cat([pieces[i] for i in with_masks]),
                             [sampled[i][positive[i]] for i in with_masks],
                             [targets[i]["masks"] for i in with_masks],
                             [targets[i]["labels"] for i in with_masks],
                             [matched[i][positive[i]] for i in with_masks])

    # -- detections ------------------------------------------------------------------------
    def detect(self, features: Features, proposals: list[torch.Tensor], shapes: list[tuple[int, int]]) -> RoIOutput:
        """Post-processed detections for every image (no sampling, no targets)."""
        class_logits, box_deltas, _ = self._classify(features, proposals, shapes)
        boxes, scores, labels = self.postprocess_detections(class_logits, box_deltas, proposals, shapes)
        masks = None
        if self.has_mask():
            logits = self._mask_features(features, boxes, shapes)[1] if sum(len(b) for b in boxes) else None
            masks = []
            probabilities = maskrcnn_inference(logits, labels) if logits is not None else [None] * len(boxes)
            for prob, box, shape in zip(probabilities, boxes, shapes):
                if prob is None or len(box) == 0:
                    masks.append(box.new_zeros((0, *shape)))
                else:
                    masks.append(paste_masks_in_image(prob, box, shape, padding=1)[:, 0])
        return RoIOutput(boxes, scores, labels, masks)
