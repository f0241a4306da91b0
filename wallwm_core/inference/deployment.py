"""What a checkpoint needs to know about the robot it drives (the ``deployment`` metadata).

Camera names (the model's view order) and the image size the model sees, the proprioceptive
joint names (the state vector's order), the arms (the action tokens' arm order) with their
end-effector frames, the base frame the poses are expressed in and the step period.
"""

from __future__ import annotations

import dataclasses

from wallwm_core.action_chunk import NS_PER_S
from wallwm_core.config_loading import ConfigError
from wallwm_core.model.config import SPATIAL_DOWNSAMPLE, ModelConfig


def _names(field: str, names: tuple[str, ...]) -> None:
    if any(not isinstance(n, str) or not n.strip() for n in names):
        raise ConfigError(f"deployment.{field} must be non-empty strings, got {list(names)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"deployment.{field} has duplicates: {list(names)}")


@dataclasses.dataclass(frozen=True)
class DeploymentMetadata:
    """Robot-side facts of a checkpoint; ``image_size`` is (height, width) of the model input."""

    cameras: tuple[str, ...]
    image_size: tuple[int, int]
    joint_names: tuple[str, ...]
    arm_names: tuple[str, ...]
    ee_frames: tuple[str, ...]
    base_frame: str
    step_period_ns: int

    def __post_init__(self) -> None:
        for field in ("cameras", "joint_names", "arm_names", "ee_frames"):
            object.__setattr__(self, field, tuple(getattr(self, field)))
            if not getattr(self, field):
                raise ConfigError(f"deployment.{field} must not be empty")
        for field in ("cameras", "joint_names", "arm_names"):
            _names(field, getattr(self, field))
        if any(not isinstance(n, str) or not n.strip() for n in self.ee_frames):
            raise ConfigError(f"deployment.ee_frames must be non-empty strings: {self.ee_frames}")
        object.__setattr__(self, "image_size", tuple(self.image_size))
        if len(self.image_size) != 2 or not all(
            isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in self.image_size
        ):
            raise ConfigError(
                f"deployment.image_size must be two positive integers (height, width), got "
                f"{self.image_size}"
            )
        if len(self.ee_frames) != len(self.arm_names):
            raise ConfigError(
                f"deployment.ee_frames has {len(self.ee_frames)} entries for "
                f"{len(self.arm_names)} arms {list(self.arm_names)}"
            )
        if not self.base_frame or not isinstance(self.base_frame, str):
            raise ConfigError(f"deployment.base_frame must be a frame name: {self.base_frame!r}")
        if (
            isinstance(self.step_period_ns, bool)
            or not isinstance(self.step_period_ns, int)
            or self.step_period_ns <= 0
        ):
            raise ConfigError(
                f"deployment.step_period_ns must be a positive integer, got {self.step_period_ns!r}"
            )

    def validate_for(self, model: ModelConfig) -> None:
        """Raise ConfigError where the metadata disagrees with the model config."""
        if len(self.arm_names) != model.action.num_arms:
            raise ConfigError(
                f"deployment.arm_names has {len(self.arm_names)} arms, the model config "
                f"action.num_arms={model.action.num_arms}"
            )
        if len(self.joint_names) != model.action.state_dim:
            raise ConfigError(
                f"deployment.joint_names has {len(self.joint_names)} joints, the model config "
                f"action.state_dim={model.action.state_dim}"
            )
        if len(self.cameras) > model.video_tower.max_views:
            raise ConfigError(
                f"deployment.cameras has {len(self.cameras)} cameras > "
                f"video_tower.max_views={model.video_tower.max_views}"
            )
        _, patch_h, patch_w = model.video_tower.patch_size
        height, width = self.image_size
        if height % (SPATIAL_DOWNSAMPLE * patch_h) or width % (SPATIAL_DOWNSAMPLE * patch_w):
            raise ConfigError(
                f"deployment.image_size={list(self.image_size)} must be divisible by "
                f"{SPATIAL_DOWNSAMPLE} x the patch size ({SPATIAL_DOWNSAMPLE * patch_h}, "
                f"{SPATIAL_DOWNSAMPLE * patch_w})"
            )
        expected = step_period_ns(model.action.control_hz)
        if abs(self.step_period_ns - expected) > 1:
            raise ConfigError(
                f"deployment.step_period_ns={self.step_period_ns} disagrees with the model "
                f"config action.control_hz={model.action.control_hz} ({expected} ns per step)"
            )

    @property
    def latent_hw(self) -> tuple[int, int]:
        """Latent size ``(h, w)`` of one view."""
        return self.image_size[0] // SPATIAL_DOWNSAMPLE, self.image_size[1] // SPATIAL_DOWNSAMPLE


def step_period_ns(control_hz: float) -> int:
    """The action step period in integer nanoseconds for ``control_hz``."""
    return round(NS_PER_S / control_hz)
