"""WallWMPolicy: the WALL-WM model behind the :class:`~wallwm_core.policy.EventPolicy` protocol.

Serving an event (what the ROS policy node calls):

- ``start_event(instruction, event_id, max_duration_ns)`` remembers the instruction and reseeds
  the sampling noise (``inference.seed`` and the event id), so a run is reproducible.
- ``next_chunk(observation)``, **event mode** (default): every call predicts the *rest of the
  event* from the fresh observation. The Δt head estimates the remaining time; the chunk has
  ``round(Δt * control_hz)`` steps (halves up, at least 1), at most ``limits.max_action_steps``
  and at most the steps left in ``max_duration_ns``; so the first call predicts the whole event
  and later calls re-plan the remainder. ``ends_event`` is set when the predicted remainder fits in this chunk.
  ``predicted_remaining_ns`` is Δt; ``progress = elapsed / (elapsed + Δt)`` with ``elapsed``
  measured from the event's first observation.
- **unified mode** (``inference.mode = "unified"``): fixed chunks of ``unified.chunk_steps``
  conditioned on the event instruction; Δt is still estimated for progress, and the chunk in
  which the predicted remainder ends is cut there and marks ``ends_event``.

Direct use: :meth:`WallWMPolicy.predict_event` / :meth:`WallWMPolicy.predict_chunk` return
typed :class:`~wallwm_core.action_chunk.ActionChunk` objects; :meth:`WallWMPolicy.infer_event`
/ :meth:`WallWMPolicy.infer_chunk` also return Δt, the predicted future latents and (on
request) decoded frames. When the checkpoint has a VLM, ``propose_next_event(task, history)``
proposes the next event (the planner's proposer). :attr:`WallWMPolicy.capabilities` tells the
node what it offers: the proposer (None without a VLM: tasks need their events), the cameras
and joints of the checkpoint, and whether it is untrained.

Device: CUDA with bfloat16 autocast when available, else CPU float32 (``device=``/``dtype=``
override). Sampling noise is drawn from a seeded ``torch.Generator`` on the CPU.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from wallwm_core.action_chunk import NS_PER_S, ActionChunk
from wallwm_core.camera_geometry import CameraGeometry
from wallwm_core.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    Checkpoint,
    CheckpointMetadata,
    StaircaseProjectionSpec,
    Status,
    build_modules,
    load_checkpoint,
    save_checkpoint,
    unique_state_dict,
)
from wallwm_core.inference.chunks import tokens_to_chunk
from wallwm_core.inference.config import InferenceConfig
from wallwm_core.inference.deployment import DeploymentMetadata
from wallwm_core.inference.event_mode import predict_event_length, sample_event, steps_for_duration
from wallwm_core.inference.observation import EncodedObservation, ObservationEncoder
from wallwm_core.inference.runtime import Runtime, select_runtime
from wallwm_core.inference.sampler import WindowInputs, WindowSample
from wallwm_core.inference.staircase import StaircaseCondition, StaircaseProjection
from wallwm_core.inference.unified_mode import sample_unified
from wallwm_core.model.codec import ConvAutoencoderCodec
from wallwm_core.model.text_encoder import TextEmbedding, TextEncoder, load_hf_text_encoder
from wallwm_core.model.wallwm import WallWM
from wallwm_core.normalization import NormalizationStats
from wallwm_core.planner import EventRecord
from wallwm_core.policy import (
    Observation,
    PolicyCapabilities,
    PolicyStep,
    SensorRequirements,
    UnknownInstructionError,
)
from wallwm_core.vlm import VLMEventProposer, WallVLM

logger = logging.getLogger(__name__)

TEXT_CACHE_SIZE = 64
WARM_UP_INSTRUCTION = "warm up"
SEED_STRIDE = 1_000_003  # event seeds: seed * stride + event_id


@dataclasses.dataclass(frozen=True)
class ChunkPrediction:
    """A chunk plus what led to it.

    ``tokens``: normalised action tokens ``[T, token_dim]`` (real steps); ``event_length_s``:
    the Δt head's remaining event time from the observation (None if not estimated);
    ``covers_event``: the predicted remainder ends within the chunk; ``future_latents``:
    predicted latents ``[V, Ff, C, h, w]`` (CPU float32, real frames only); ``frames``: their
    decoding as uint8 ``[V, Ff', H, W, 3]`` when requested.
    """

    chunk: ActionChunk
    tokens: np.ndarray
    event_length_s: float | None
    covers_event: bool
    future_latents: torch.Tensor
    frames: np.ndarray | None = None


class WallWMPolicy:
    """WALL-WM inference: event mode, unified mode, checkpoints and the EventPolicy protocol."""

    def __init__(
        self,
        model: WallWM,
        codec: ConvAutoencoderCodec,
        action_stats: NormalizationStats,
        state_stats: NormalizationStats,
        deployment: DeploymentMetadata,
        *,
        inference: InferenceConfig | None = None,
        status: Status = "untrained",
        description: str = "",
        vlm: WallVLM | None = None,
        staircase_projection: StaircaseProjection | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | str | None = None,
    ) -> None:
        config = model.config
        deployment.validate_for(config)
        self.inference = inference or InferenceConfig()
        self.inference.validate_for(config)
        self.runtime: Runtime = select_runtime(device, dtype)
        self.model = model.to(self.runtime.device).eval()
        self.codec = codec.to(self.runtime.device).eval()
        self.vlm = vlm.to(self.runtime.device).eval() if vlm is not None else None
        self.staircase_projection = (
            staircase_projection.to(self.runtime.device).eval()
            if staircase_projection is not None
            else None
        )
        self.action_stats = action_stats
        self.state_stats = state_stats
        self.deployment = deployment
        self.status: Status = status
        self.description = description
        self.encoder = ObservationEncoder(
            deployment, config, self.codec, state_stats, self.runtime.device
        )
        self._external_text: TextEncoder | None = None
        self._text_cache: collections.OrderedDict[str, TextEmbedding] = collections.OrderedDict()
        self._generator = torch.Generator().manual_seed(self.inference.seed)
        # (stamp_ns, latents [1, V, 1, C, h, w]) of recent observations, for history frames.
        self._history: collections.deque[tuple[int, torch.Tensor]] = collections.deque(maxlen=64)
        self._latest_frames: torch.Tensor | None = None
        self._proposer = VLMEventProposer(self.vlm, self._vlm_images) if self.vlm else None
        # The event being served.
        self._instruction: str | None = None
        self._event_id = 0
        self._max_duration_ns = 0
        self._event_start_ns: int | None = None
        self._chunk_index = 0
        if status == "untrained":
            logger.warning("WallWMPolicy: the checkpoint is UNTRAINED; its actions are random")

    # ------------------------------------------------------------------------------------------
    # checkpoints
    # ------------------------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: Checkpoint,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | str | None = None,
        inference: InferenceConfig | None = None,
    ) -> WallWMPolicy:
        """A policy from an in-memory :class:`~wallwm_core.checkpoint.Checkpoint`."""
        model, codec, vlm, projection = build_modules(checkpoint)
        meta = checkpoint.metadata
        return cls(
            model,
            codec,
            checkpoint.action_stats,
            checkpoint.state_stats,
            meta.deployment,
            inference=inference or meta.inference,
            status=meta.status,
            description=meta.description,
            vlm=vlm,
            staircase_projection=projection,
            device=device,
            dtype=dtype,
        )

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | str | None = None,
        inference: InferenceConfig | None = None,
    ) -> WallWMPolicy:
        """Load a checkpoint directory (strictly validated, see :mod:`wallwm_core.checkpoint`)."""
        return cls.from_checkpoint(
            load_checkpoint(path), device=device, dtype=dtype, inference=inference
        )

    def to_checkpoint(self) -> Checkpoint:
        """The policy's weights, statistics and metadata as a checkpoint (CPU copies)."""

        def cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
            return {
                k: v.detach().to("cpu").clone() for k, v in unique_state_dict(module)[0].items()
            }

        projection = self.staircase_projection
        metadata = CheckpointMetadata(
            format=FORMAT,
            format_version=FORMAT_VERSION,
            status=self.status,
            deployment=self.deployment,
            inference=self.inference,
            vlm=self.vlm is not None,
            staircase_projection=(
                StaircaseProjectionSpec(projection.input_dim, projection.output_dim)
                if projection is not None
                else None
            ),
            description=self.description,
        )
        return Checkpoint(
            model_config=self.model.config,
            model_state=cpu_state(self.model),
            codec_state=cpu_state(self.codec),
            action_stats=self.action_stats,
            state_stats=self.state_stats,
            metadata=metadata,
            vlm_config=self.vlm.config if self.vlm is not None else None,
            vlm_state=cpu_state(self.vlm) if self.vlm is not None else None,
            projection_state=cpu_state(projection) if projection is not None else None,
        )

    def save_pretrained(self, path: str | Path) -> Path:
        """Write the checkpoint directory ``path``; :meth:`from_pretrained` reads it back."""
        return save_checkpoint(self.to_checkpoint(), path)

    # ------------------------------------------------------------------------------------------
    # properties
    # ------------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.runtime.device

    @property
    def dtype(self) -> torch.dtype:
        return self.runtime.dtype

    @property
    def step_period_ns(self) -> int:
        return self.deployment.step_period_ns

    # ------------------------------------------------------------------------------------------
    # conditioning
    # ------------------------------------------------------------------------------------------
    def encode_instruction(self, instruction: str) -> TextEmbedding:
        """The text embedding ``[1, L, text_dim]`` of ``instruction`` (cached)."""
        if not isinstance(instruction, str) or not instruction.strip():
            raise ValueError(f"instruction must be a non-empty string, got {instruction!r}")
        cached = self._text_cache.get(instruction)
        if cached is not None:
            self._text_cache.move_to_end(instruction)
            return cached
        with self.runtime.inference_context():
            if self.model.text_encoder is not None:
                embedding = self.model.encode_texts([instruction])
            else:
                if self._external_text is None:
                    self._external_text = load_hf_text_encoder(
                        self.model.config.text_encoder, self.device
                    )
                embedding = self._external_text.encode_texts([instruction])
        self._text_cache[instruction] = embedding
        if len(self._text_cache) > TEXT_CACHE_SIZE:
            self._text_cache.popitem(last=False)
        return embedding

    def staircase_condition(
        self, task: str, done_events: Sequence[str] = (), observation: Observation | None = None
    ) -> StaircaseCondition:
        """Staircase latents of the VLM for ``task`` after ``done_events`` (images of
        ``observation`` when the VLM has vision); needs a VLM in the checkpoint."""
        if self.vlm is None:
            raise RuntimeError("this checkpoint has no VLM: Staircase latents are unavailable")
        images = None
        if observation is not None:
            self.encoder.check(observation)
            with self.runtime.inference_context():
                images = self._vlm_images(self.encoder.frames(observation.images))
        with self.runtime.inference_context():
            prompt = self.vlm.encode_prompts(
                [task], [tuple(done_events)], None if images is None else images[None]
            )
            latents, mask = self.vlm.staircase_latents(prompt)
        return StaircaseCondition(latents.float(), mask)

    def _staircase_text(self, condition: StaircaseCondition) -> TextEmbedding:
        if self.staircase_projection is None:
            raise RuntimeError(
                "this checkpoint has no staircase projection (staircase_projection."
                "safetensors): it cannot condition on Staircase latents"
            )
        if condition.latents.shape[0] != 1:
            raise ValueError(
                f"one observation takes batch-1 latents, got {condition.latents.shape}"
            )
        with self.runtime.inference_context():
            moved = StaircaseCondition(
                condition.latents.to(self.device), condition.mask.to(self.device)
            )
            return self.staircase_projection(moved)

    # ------------------------------------------------------------------------------------------
    # observations and windows
    # ------------------------------------------------------------------------------------------
    def _encode(self, observation: Observation) -> EncodedObservation:
        with self.runtime.inference_context():
            encoded = self.encoder.encode(observation)
        self._latest_frames = encoded.frames[0]
        if self._history and self._history[-1][0] >= encoded.stamp_ns:
            self._history.clear()  # time went backwards (a new run): forget the past
        self._history.append((encoded.stamp_ns, encoded.latents))
        return encoded

    def _context(
        self, encoded: EncodedObservation, history_frames: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """History + anchor latents ``[1, V, M+1, C, h, w]`` and their mask (None if complete).

        History slot ``k`` (k = 1..M frames back) takes the stored observation closest to
        ``stamp - k * latent_period`` within half a period; missing slots are masked out.
        """
        if history_frames == 0:
            return encoded.latents, None
        period = self.step_period_ns * self.model.config.action.steps_per_latent_frame
        latents = [encoded.latents]
        real = [True]
        for k in range(1, history_frames + 1):
            target = encoded.stamp_ns - k * period
            best = min(
                (entry for entry in self._history if entry[0] < encoded.stamp_ns),
                key=lambda entry: abs(entry[0] - target),
                default=None,
            )
            if best is not None and abs(best[0] - target) <= period // 2:
                latents.insert(0, best[1])
                real.insert(0, True)
            else:
                latents.insert(0, torch.zeros_like(encoded.latents))
                real.insert(0, False)
        context = torch.cat(latents, dim=2)
        if all(real):
            return context, None
        batch, views, frames, _, height, width = context.shape
        mask = torch.tensor(real, device=self.device)[None, None, :, None, None]
        return context, mask.expand(batch, views, frames, height, width).contiguous()

    def _inputs(
        self, encoded: EncodedObservation, text: TextEmbedding, history_frames: int
    ) -> WindowInputs:
        context, mask = self._context(encoded, history_frames)
        return WindowInputs(
            context_latents=context,
            text=text,
            state=encoded.state,
            context_mask=mask,
            cross_view_allowed=encoded.cross_view_allowed,
        )

    def _generator_for(self, seed: int | None) -> torch.Generator:
        return self._generator if seed is None else torch.Generator().manual_seed(seed)

    def _prediction(
        self,
        window: WindowSample,
        encoded: EncodedObservation,
        event_length_s: float | None,
        covers_event: bool,
        *,
        instruction: str,
        event_id: int,
        chunk_index: int,
        num_steps: int | None = None,
        decode_video: bool,
    ) -> ChunkPrediction:
        steps = int(window.num_steps[0]) if num_steps is None else num_steps
        tokens = window.actions[0, :steps].float().cpu()
        frames_real = window.future_mask[0].flatten(2).any(dim=2).any(dim=0)
        future = window.future_latents[0][:, frames_real].float().cpu()
        frames = None
        if decode_video:
            with self.runtime.inference_context():
                decoded = self.codec.decode(future[None].to(self.device))[0]  # [V, F, 3, H, W]
            frames = (decoded.float() * 255.0).round().clamp(0, 255).to(torch.uint8)
            frames = frames.permute(0, 1, 3, 4, 2).cpu().numpy()
        chunk = tokens_to_chunk(
            tokens,
            self.action_stats,
            self.deployment,
            encoded.stamp_ns,
            event_id=event_id,
            instruction=instruction,
            chunk_index=chunk_index,
            ends_event=covers_event,
        )
        return ChunkPrediction(
            chunk=chunk,
            tokens=tokens.numpy(),
            event_length_s=event_length_s,
            covers_event=covers_event,
            future_latents=future,
            frames=frames,
        )

    # ------------------------------------------------------------------------------------------
    # inference API
    # ------------------------------------------------------------------------------------------
    def infer_event(
        self,
        observation: Observation,
        instruction: str,
        *,
        event_id: int = 0,
        chunk_index: int = 0,
        max_steps: int | None = None,
        decode_video: bool = False,
        seed: int | None = None,
    ) -> ChunkPrediction:
        """Event mode: the actions (and video) of the rest of the event from ``observation``.

        The chunk has ``round(Δt * control_hz)`` steps within ``[1, min(max_action_steps,
        max_steps)]``; ``ends_event``/``covers_event`` when the predicted remainder fits.
        """
        text = self.encode_instruction(instruction)
        encoded = self._encode(observation)
        history = self.model.config.objective.context_latent_frames - 1
        inputs = self._inputs(encoded, text, history)
        with self.runtime.inference_context():
            sample = sample_event(
                self.model,
                inputs,
                self.inference.sampler,
                self._generator_for(seed),
                max_steps=max_steps,
            )
        return self._prediction(
            sample.window,
            encoded,
            float(sample.event_length_s[0]),
            bool(sample.covers_event[0]),
            instruction=instruction,
            event_id=event_id,
            chunk_index=chunk_index,
            decode_video=decode_video,
        )

    def predict_event(self, observation: Observation, instruction: str, **kwargs) -> ActionChunk:
        """:meth:`infer_event`'s chunk (same keyword arguments)."""
        return self.infer_event(observation, instruction, **kwargs).chunk

    def infer_chunk(
        self,
        observation: Observation,
        instruction: str | None = None,
        *,
        staircase: StaircaseCondition | None = None,
        event_id: int = 0,
        chunk_index: int = 0,
        estimate_event_length: bool = False,
        decode_video: bool = False,
        seed: int | None = None,
    ) -> ChunkPrediction:
        """Unified mode: one fixed-length chunk (``inference.unified``) conditioned on an
        instruction (global or per-chunk) or on Staircase latents (exactly one of them).

        With ``estimate_event_length`` the Δt head runs too and the chunk is cut where the
        predicted remainder ends (then ``ends_event`` is set).
        """
        if (instruction is None) == (staircase is None):
            raise ValueError("give exactly one of instruction or staircase")
        text = (
            self.encode_instruction(instruction)
            if instruction is not None
            else self._staircase_text(staircase)  # type: ignore[arg-type]
        )
        encoded = self._encode(observation)
        window = self.inference.unified
        inputs = self._inputs(encoded, text, window.history_frames)
        event_length_s, steps, covers = None, window.chunk_steps, False
        with self.runtime.inference_context():
            sample = sample_unified(
                self.model, inputs, window, self.inference.sampler, self._generator_for(seed)
            )
            if estimate_event_length:
                event_length_s = float(predict_event_length(self.model, inputs)[0])
        if event_length_s is not None:
            needed = steps_for_duration(event_length_s, self.model.config.action.control_hz)
            covers = needed <= window.chunk_steps
            steps = min(needed, window.chunk_steps)
        return self._prediction(
            sample,
            encoded,
            event_length_s,
            covers,
            instruction=instruction or "",
            event_id=event_id,
            chunk_index=chunk_index,
            num_steps=steps,
            decode_video=decode_video,
        )

    def predict_chunk(
        self, observation: Observation, instruction: str | None = None, **kwargs
    ) -> ActionChunk:
        """:meth:`infer_chunk`'s chunk (same arguments)."""
        return self.infer_chunk(observation, instruction, **kwargs).chunk

    # ------------------------------------------------------------------------------------------
    # EventPolicy protocol
    # ------------------------------------------------------------------------------------------
    def start_event(self, instruction: str, event_id: int, max_duration_ns: int) -> None:
        """Begin serving ``instruction``; raises UnknownInstructionError for a blank one."""
        if not isinstance(instruction, str) or not instruction.strip():
            raise UnknownInstructionError(f"WALL-WM needs a non-empty instruction: {instruction!r}")
        if max_duration_ns <= 0:
            raise ValueError(f"max_duration_ns must be positive, got {max_duration_ns}")
        self.encode_instruction(instruction)  # fail early if the text encoder cannot load
        self._instruction = instruction
        self._event_id = int(event_id)
        self._max_duration_ns = int(max_duration_ns)
        self._event_start_ns = None
        self._chunk_index = 0
        self._generator = torch.Generator().manual_seed(
            (self.inference.seed * SEED_STRIDE + self._event_id) % (2**63)
        )

    def next_chunk(self, observation: Observation) -> PolicyStep:
        """The next chunk of the current event (rules in the module docstring)."""
        if self._instruction is None:
            raise RuntimeError("next_chunk() called before start_event()")
        stamp = int(observation.stamp_ns)
        if self._event_start_ns is None:
            self._event_start_ns = stamp
        elapsed_ns = max(0, stamp - self._event_start_ns)
        budget_steps = max(1, (self._max_duration_ns - elapsed_ns) // self.step_period_ns)
        if self.inference.mode == "event":
            prediction = self.infer_event(
                observation,
                self._instruction,
                event_id=self._event_id,
                chunk_index=self._chunk_index,
                max_steps=int(budget_steps),
            )
        else:
            prediction = self.infer_chunk(
                observation,
                self._instruction,
                event_id=self._event_id,
                chunk_index=self._chunk_index,
                estimate_event_length=True,
            )
        self._chunk_index += 1
        remaining_s = max(prediction.event_length_s or 0.0, 0.0)
        remaining_ns = round(remaining_s * NS_PER_S)
        total = elapsed_ns + remaining_ns
        return PolicyStep(
            chunk=prediction.chunk,
            progress=elapsed_ns / total if total > 0 else 0.0,
            predicted_remaining_ns=remaining_ns,
        )

    def warm_up(self) -> None:
        """One inference on a blank observation, so that the first real chunk does not pay for
        the first call's lazy allocations and kernel set-up (docs/inference.md, "Latency in the
        policy node"). The policy's state is left as it was: the event, the noise generator,
        the observation history and the instruction cache."""
        history, latest = list(self._history), self._latest_frames
        cached = WARM_UP_INSTRUCTION in self._text_cache
        try:
            observation = blank_observation(self.deployment)
            if self.inference.mode == "event":
                self.infer_event(observation, WARM_UP_INSTRUCTION, seed=0)
            else:
                self.infer_chunk(
                    observation, WARM_UP_INSTRUCTION, estimate_event_length=True, seed=0
                )
        finally:
            self._history.clear()
            self._history.extend(history)
            self._latest_frames = latest
            if not cached:
                self._text_cache.pop(WARM_UP_INSTRUCTION, None)

    # ------------------------------------------------------------------------------------------
    # VLM proposer
    # ------------------------------------------------------------------------------------------
    def _vlm_images(self, frames: torch.Tensor | None = None) -> torch.Tensor | None:
        """Views ``[V', 3, S, S]`` in [0, 1] for the VLM (latest observation by default)."""
        if self.vlm is None or self.vlm.config.vision is None:
            return None
        frames = self._latest_frames if frames is None else frames
        if frames is None:
            return None
        vision = self.vlm.config.vision
        size = (vision.image_size, vision.image_size)
        images = F.interpolate(
            frames[: vision.max_views].float(), size=size, mode="bilinear", antialias=True
        )
        return images.clamp(0.0, 1.0)

    def propose_next_event(self, task: str, history: tuple[EventRecord, ...]) -> str | None:
        """The next event instruction of ``task`` after ``history``, None when it is done.

        Only with a VLM (see :attr:`capabilities`); raises RuntimeError without one.
        """
        if self._proposer is None:
            raise RuntimeError(
                "propose_next_event: this WALL-WM checkpoint has no VLM, so it cannot propose "
                "events; give the task's events explicitly"
            )
        with self.runtime.inference_context():
            return self._proposer(task, history)

    @property
    def capabilities(self) -> PolicyCapabilities:
        """The proposer (with a VLM), the checkpoint's cameras and joints, untrained or not,
        and :meth:`warm_up`."""
        return PolicyCapabilities(
            proposer=self.propose_next_event if self._proposer is not None else None,
            sensors=SensorRequirements(self.deployment.cameras, self.deployment.joint_names),
            untrained=self.status == "untrained",
            warm_up=self.warm_up,
        )


def blank_observation(deployment: DeploymentMetadata, stamp_ns: int = 0) -> Observation:
    """A grey observation in the checkpoint's format: its cameras (at twice the model's image
    size, so the resize runs as for a real camera; one metre apart along x, looking along z),
    its joints at zero. Input for :meth:`WallWMPolicy.warm_up`."""
    height, width = (2 * n for n in deployment.image_size)
    focal = float(max(height, width))
    intrinsics = np.array([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]])
    cameras = {}
    for index, name in enumerate(deployment.cameras):
        pose = np.eye(4)
        pose[0, 3] = float(index)
        cameras[name] = CameraGeometry(
            K=intrinsics, image_size=(height, width), world_from_camera=pose
        )
    return Observation(
        stamp_ns=stamp_ns,
        images={name: np.full((height, width, 3), 128, np.uint8) for name in deployment.cameras},
        joint_positions=np.zeros(len(deployment.joint_names)),
        joint_names=tuple(deployment.joint_names),
        cameras=cameras,
    )
