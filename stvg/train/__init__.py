"""Stage two: ``run`` trains a model of :mod:`stvg.models.zoo` (CSDVL by default) from a feature
store (see :mod:`stvg.train.trainer`)."""

from stvg.train.trainer import run

__all__ = ["run"]
