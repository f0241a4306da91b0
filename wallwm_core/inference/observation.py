"""Observations -> model inputs: validated images -> codec latents, joints -> normalised state.

Checks (each failure is an :class:`ObservationError` naming the camera or joint):

- every camera of the checkpoint is present, as a uint8 ``[H, W, 3]`` array;
- the joint positions are finite and match the checkpoint's joints (by name when the
  observation names them, reordered if needed; otherwise by count);
- when the sight-cone mask is in use (enabled in the model config and more than one camera),
  every camera has a calibration whose ``image_size`` matches its image.

Images are resized to the checkpoint's ``image_size`` with ``torch.nn.functional.interpolate``
(bilinear, antialiased) and encoded by the codec into one latent frame per view. The calibration
needs no rescaling: the sight-cone patches are fractions of the image, the same at any size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from wallwm_core.camera_geometry import CameraGeometry
from wallwm_core.inference.deployment import DeploymentMetadata
from wallwm_core.model.codec import VideoCodec
from wallwm_core.model.config import ModelConfig
from wallwm_core.model.sight_cone import cross_view_allowed_from_cameras
from wallwm_core.normalization import NormalizationStats
from wallwm_core.policy import Observation


class ObservationError(ValueError):
    """An observation the policy cannot use (missing camera, bad image, bad joints, ...)."""


@dataclasses.dataclass(frozen=True)
class EncodedObservation:
    """One observation as model inputs (batch 1, on the runtime device).

    ``frames`` ``[1, V, 3, H, W]`` float in [0, 1] at the model's image size; ``latents``
    ``[1, V, 1, C, h, w]``; ``state`` ``[1, state_dim]`` normalised float32;
    ``cross_view_allowed`` ``[1, V*N, V*N]`` or None.
    """

    stamp_ns: int
    frames: torch.Tensor
    latents: torch.Tensor
    state: torch.Tensor
    cross_view_allowed: torch.Tensor | None


class ObservationEncoder:
    """Validates observations and turns them into :class:`EncodedObservation`."""

    def __init__(
        self,
        deployment: DeploymentMetadata,
        model_config: ModelConfig,
        codec: VideoCodec,
        state_stats: NormalizationStats,
        device: torch.device,
    ) -> None:
        self.deployment = deployment
        self.model_config = model_config
        self.codec = codec
        self.state_stats = state_stats
        self.device = device
        sight_cone = model_config.video_tower.sight_cone
        self.uses_sight_cone = sight_cone.enabled and len(deployment.cameras) > 1
        self._mask_cache: tuple[tuple, torch.Tensor] | None = None

    # -- checks --------------------------------------------------------------------------------
    def _image(self, observation: Observation, camera: str) -> np.ndarray:
        if camera not in observation.images:
            raise ObservationError(
                f"camera {camera!r} is missing from the observation (have "
                f"{sorted(observation.images)}; the checkpoint needs {list(self.deployment.cameras)})"
            )
        image = observation.images[camera]
        if not isinstance(image, np.ndarray):
            raise ObservationError(
                f"camera {camera!r}: image must be a numpy array, got {type(image).__name__}"
            )
        if image.dtype != np.uint8:
            raise ObservationError(
                f"camera {camera!r}: image must be uint8 [H, W, 3], got dtype {image.dtype}"
            )
        if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
            raise ObservationError(
                f"camera {camera!r}: image must be [H, W, 3] (colour), got shape {image.shape}"
            )
        return image

    def _calibration(
        self, observation: Observation, camera: str, image: np.ndarray
    ) -> CameraGeometry:
        geometry = observation.cameras.get(camera)
        if geometry is None:
            raise ObservationError(
                f"camera {camera!r} has no calibration in the observation; the model's "
                "sight-cone mask needs every camera's intrinsics and extrinsics"
            )
        if tuple(geometry.image_size) != tuple(image.shape[:2]):
            raise ObservationError(
                f"camera {camera!r}: calibration is for {geometry.image_size[0]}x"
                f"{geometry.image_size[1]} but the image is {image.shape[0]}x{image.shape[1]}"
            )
        return geometry

    def joint_vector(self, observation: Observation) -> np.ndarray:
        """The checkpoint's joints in its order, float64 ``[J]``; raises ObservationError."""
        expected = self.deployment.joint_names
        positions = np.asarray(observation.joint_positions)
        if positions.ndim != 1 or not np.issubdtype(positions.dtype, np.number):
            raise ObservationError(
                f"joint_positions must be a numeric [J] vector, got {positions.dtype} "
                f"{positions.shape}"
            )
        positions = positions.astype(np.float64)
        names = tuple(observation.joint_names)
        if names:
            if len(names) != len(positions):
                raise ObservationError(
                    f"{len(positions)} joint positions for {len(names)} joint names"
                )
            missing = [n for n in expected if n not in names]
            if missing:
                raise ObservationError(
                    f"joint(s) {missing} missing from the observation (have {list(names)})"
                )
            index = {name: i for i, name in enumerate(names)}
            positions = positions[[index[n] for n in expected]]
        elif len(positions) != len(expected):
            raise ObservationError(
                f"wrong joint count: {len(positions)} joint positions, the checkpoint expects "
                f"{len(expected)} ({list(expected)})"
            )
        bad = [expected[i] for i in np.flatnonzero(~np.isfinite(positions))]
        if bad:
            raise ObservationError(f"joint position(s) of {bad} are NaN or infinite")
        return positions

    def check(self, observation: Observation) -> None:
        """Raise ObservationError if ``observation`` cannot be encoded."""
        if not isinstance(observation, Observation):
            raise ObservationError(f"expected an Observation, got {type(observation).__name__}")
        for camera in self.deployment.cameras:
            image = self._image(observation, camera)
            if self.uses_sight_cone:
                self._calibration(observation, camera, image)
        self.joint_vector(observation)

    # -- encoding ------------------------------------------------------------------------------
    def frames(self, images: Mapping[str, np.ndarray]) -> torch.Tensor:
        """Images (checked) -> ``[V, 3, H, W]`` float32 in [0, 1] at the model's image size."""
        views = []
        for camera in self.deployment.cameras:
            array = np.ascontiguousarray(images[camera])
            image = torch.from_numpy(array).to(self.device).permute(2, 0, 1)[None].float() / 255.0
            if tuple(image.shape[-2:]) != self.deployment.image_size:
                image = F.interpolate(
                    image,
                    size=self.deployment.image_size,
                    mode="bilinear",
                    align_corners=False,
                    antialias=True,
                ).clamp(0.0, 1.0)
            views.append(image[0])
        return torch.stack(views)

    def cross_view_allowed(self, observation: Observation) -> torch.Tensor | None:
        """Sight-cone mask ``[1, V*N, V*N]`` of the observation's rig (cached per rig)."""
        if not self.uses_sight_cone:
            return None
        rig = [
            self._calibration(observation, c, self._image(observation, c))
            for c in self.deployment.cameras
        ]
        key = tuple(
            (g.K.tobytes(), tuple(g.image_size), g.world_from_camera.tobytes()) for g in rig
        )
        if self._mask_cache is None or self._mask_cache[0] != key:
            grid = self.model_config.patch_grid(self.deployment.latent_hw)
            mask = cross_view_allowed_from_cameras(
                [rig], grid, self.model_config.video_tower.sight_cone, device=self.device
            )
            self._mask_cache = (key, mask)
        return self._mask_cache[1]

    def encode(self, observation: Observation) -> EncodedObservation:
        """Check and encode (call inside the runtime's autocast context)."""
        self.check(observation)
        frames = self.frames(observation.images)[None]  # [1, V, 3, H, W]
        latents = self.codec.encode(frames[:, :, None]).float()  # [1, V, 1, C, h, w]
        state = self.state_stats.normalize(self.joint_vector(observation)).astype(np.float32)
        return EncodedObservation(
            stamp_ns=int(observation.stamp_ns),
            frames=frames,
            latents=latents,
            state=torch.from_numpy(state)[None].to(self.device),
            cross_view_allowed=self.cross_view_allowed(observation),
        )
