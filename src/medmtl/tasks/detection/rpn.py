"""Region proposal network that returns its losses whenever targets are given, in any mode.

torchvision's ``RegionProposalNetwork.forward`` computes losses only in training mode and needs
targets for every image. Here losses come for the images that have targets (partial labels),
also in evaluation mode, and the proposal counts are the same in both modes.
"""

from __future__ import annotations

import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead, concat_box_prediction_layers


class ProposalNetwork(RegionProposalNetwork):
    """RPN over pyramid levels with strides ``reductions``; anchors ``anchor_scale × stride`` wide."""

    def __init__(self, in_channels: int, reductions: list[int], anchor_scale: float,
                 aspect_ratios: tuple[float, ...], pre_nms_top_n: int, post_nms_top_n: int,
                 batch_size_per_image: int, nms_thresh: float = 0.7) -> None:
        sizes = tuple((float(anchor_scale * r),) for r in reductions)
        anchors = AnchorGenerator(sizes=sizes, aspect_ratios=(tuple(aspect_ratios),) * len(reductions))
        head = RPNHead(in_channels, anchors.num_anchors_per_location()[0])
        top_n = {"training": pre_nms_top_n, "testing": pre_nms_top_n}
        post_n = {"training": post_nms_top_n, "testing": post_nms_top_n}
        super().__init__(anchors, head, fg_iou_thresh=0.7, bg_iou_thresh=0.3,
                         batch_size_per_image=batch_size_per_image, positive_fraction=0.5,
                         pre_nms_top_n=top_n, post_nms_top_n=post_n, nms_thresh=nms_thresh)

    def propose(self, images: torch.Tensor, features: list[torch.Tensor],
                targets: dict[int, dict[str, torch.Tensor]] | None = None
                ) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        """Proposals ``list[[P_i, 4]]`` for every image of ``images [B, C, H, W]``, and the RPN
        losses (``rpn_objectness``, ``rpn_box``) over the images whose index is in ``targets``
        (empty dict when there are none)."""
        size = (int(images.shape[-2]), int(images.shape[-1]))
        image_list = ImageList(images, [size] * images.shape[0])
        objectness, deltas = self.head(features)
        anchors = self.anchor_generator(image_list, features)
        per_level = [o[0].numel() for o in objectness]
        objectness, deltas = concat_box_prediction_layers(objectness, deltas)
        count = len(anchors)
        proposals = self.box_coder.decode(deltas.detach(), anchors).view(count, -1, 4)
        boxes, _ = self.filter_proposals(proposals, objectness, image_list.image_sizes, per_level)
        if not targets:
            return boxes, {}
        rows = sorted(targets)
        per_image_objectness = objectness.view(count, -1)[rows].reshape(-1, 1)
        per_image_deltas = deltas.view(count, -1, 4)[rows].reshape(-1, 4)
        chosen_anchors = [anchors[i] for i in rows]
        labels, matched = self.assign_targets_to_anchors(chosen_anchors, [targets[i] for i in rows])
        regression_targets = self.box_coder.encode(matched, chosen_anchors)
        loss_objectness, loss_box = self.compute_loss(per_image_objectness, per_image_deltas, labels,
                                                      regression_targets)
        return boxes, {"rpn_objectness": loss_objectness, "rpn_box": loss_box}
