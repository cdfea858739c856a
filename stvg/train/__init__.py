"""Stage two: ``run`` trains CSDVL from a feature store (see :mod:`stvg.train.trainer`)."""

from stvg.train.trainer import run

__all__ = ["run"]
