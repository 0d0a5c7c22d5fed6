"""LightningModules and tools for teacher, pseudo-label and student training."""

from anydepth.training.base import DepthTrainingModule
from anydepth.training.student import StudentModule
from anydepth.training.teacher import TeacherModule

__all__ = ["DepthTrainingModule", "StudentModule", "TeacherModule"]
