"""Headless offscreen rendering with settings that are fast on a software (llvmpipe) GL.

``wallwm_sim/__init__`` sets ``MUJOCO_GL=egl`` unless it is set; ``osmesa`` works too (set
``MUJOCO_GL=osmesa`` before importing wallwm_sim). MuJoCo picks its GL backend when it is first
imported, so if something imported mujoco before wallwm_sim (and MUJOCO_GL was unset then),
:func:`use_headless_backend` swaps in the headless context class before the first renderer is
made. Shadows, reflections and multisampling are off: on a CPU renderer they cost 5-10x.
"""

from __future__ import annotations

import os

import mujoco
import numpy as np


class RenderError(RuntimeError):
    """The offscreen renderer could not be created or used."""


def use_headless_backend() -> None:
    """Make MuJoCo's renderer use the ``MUJOCO_GL`` headless backend (egl or osmesa) even if
    mujoco was imported before the variable was set (it then chose a windowed backend)."""
    wanted = os.environ.get("MUJOCO_GL", "").lower().strip()
    if wanted not in ("egl", "osmesa"):
        return
    try:
        from mujoco.rendering.classic import gl_context
    except ImportError:  # another mujoco layout: nothing to fix
        return
    if getattr(gl_context, "_MUJOCO_GL", wanted) == wanted:
        return
    if wanted == "egl":
        from mujoco.egl import GLContext
    else:
        from mujoco.osmesa import GLContext
    gl_context.GLContext = GLContext


class CameraRenderer:
    """Renders RGB images of named cameras at one resolution; close it (or use ``with``)."""

    def __init__(self, model: mujoco.MjModel, height: int, width: int) -> None:
        if height > model.vis.global_.offheight or width > model.vis.global_.offwidth:
            raise RenderError(
                f"image {height}x{width} exceeds the offscreen buffer "
                f"{model.vis.global_.offheight}x{model.vis.global_.offwidth}"
            )
        try:
            use_headless_backend()
            self._renderer = mujoco.Renderer(model, height=height, width=width)
        except Exception as error:  # the GL backend raises various types
            backend = os.environ.get("MUJOCO_GL", "<unset>")
            raise RenderError(
                f"cannot create a MuJoCo offscreen renderer with MUJOCO_GL={backend}: {error}. "
                "Set MUJOCO_GL=egl or MUJOCO_GL=osmesa (apt libosmesa6) before importing "
                "wallwm_sim/mujoco."
            ) from error
        flags = self._renderer.scene.flags
        flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        self.height, self.width = height, width

    def render(self, data: mujoco.MjData, camera: str | int) -> np.ndarray:
        """RGB ``[H, W, 3]`` uint8, row 0 at the top of the image."""
        self._renderer.update_scene(data, camera=camera)
        return self._renderer.render()

    def render_depth(self, data: mujoco.MjData, camera: str | int) -> np.ndarray:
        """Depth ``[H, W]`` float32 metres (distance along the optical axis)."""
        self._renderer.enable_depth_rendering()
        try:
            self._renderer.update_scene(data, camera=camera)
            return self._renderer.render().astype(np.float32)
        finally:
            self._renderer.disable_depth_rendering()

    def close(self) -> None:
        self._renderer.close()

    def __enter__(self) -> CameraRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
