"""A backbone plus an objective's heads: the module the trainer optimises and checkpoints.

State-dict keys: ``backbone.*`` and ``heads.<objective>.*``.
"""

from __future__ import annotations

from torch import nn

from zoo.batch import Batch
from zoo.models.base import Backbone
from zoo.objectives.base import LossOutput, Objective


class ZooModel(nn.Module):
    def __init__(self, backbone: Backbone, objective: Objective) -> None:
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleDict(objective.heads(backbone))
        object.__setattr__(self, "objective", objective)  # plain reference, not a submodule

    def forward(self, batch: Batch) -> LossOutput:
        return self.objective.compute(self, batch)
