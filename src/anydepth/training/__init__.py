"""LightningModules and tools for teacher, pseudo-label, student and metric depth training."""

from anydepth.training.base import DepthTrainingModule
from anydepth.training.metric import MetricDepthModule
from anydepth.training.student import StudentModule
from anydepth.training.teacher import TeacherModule

__all__ = ["DepthTrainingModule", "MetricDepthModule", "StudentModule", "TeacherModule"]
