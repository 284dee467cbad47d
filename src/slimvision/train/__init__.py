"""Training: one loop with hooks, checkpoints and exact resume."""

from slimvision.train.batchnorm import recalibrate_batchnorm
from slimvision.train.callbacks import Callback
from slimvision.train.checkpoint import checkpoint_dirs, load_checkpoint, save_checkpoint
from slimvision.train.config import TrainConfig
from slimvision.train.ema import ModelEMA
from slimvision.train import distributed
from slimvision.train.trainer import Trainer, TrainResult, seed_everything

__all__ = ["Callback", "distributed", "checkpoint_dirs", "load_checkpoint", "save_checkpoint", "TrainConfig", "ModelEMA", "Trainer", "TrainResult", "recalibrate_batchnorm", "seed_everything"]
