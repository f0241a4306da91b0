"""Recorded episodes -> training windows: the data side of training (see docs/training.md).

:func:`prepare_data` reads the episodes (:mod:`wallwm_core.episode_format`), splits them by seed,
cuts event or fixed windows (:mod:`.windows`), trains the codec and encodes every frame into a
memory-mapped latent cache (:mod:`.codec_stage`, :mod:`.latent_cache`), fits normalisation on
train windows and weights windows by event cluster (:mod:`.balance`). The loop then draws
indices and calls :meth:`WindowDataset.batch`.
"""

from wallwm_core.training.data.config import DataConfig
from wallwm_core.training.data.dataset import WindowDataset
from wallwm_core.training.data.episodes import DatasetError
from wallwm_core.training.data.prepare import PreparedData, prepare_data

__all__ = ["DataConfig", "DatasetError", "PreparedData", "WindowDataset", "prepare_data"]
