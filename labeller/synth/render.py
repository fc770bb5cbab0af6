"""Ray-cast frames of a synthetic scene: colour, sensor depth, noise-free depth, instance ids.

Open3D's RaycastingScene gives each pixel's hit (distance, triangle, barycentric UVs,
normal); colour is our own shading of the hits: textures through the atlas
(`labeller.synth.atlas`), the static geometry's baked light, objects lit per pixel with a
shadow ray each (`labeller.synth.lighting`), a slight lens blur and colour noise. Depth
goes through the sensor model (`labeller.synth.sensor`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from labeller.core.camera import CameraIntrinsics
from labeller.geometry.open3d_tensor import tensor
from labeller.geometry.render import pixel_rays_cam
from labeller.synth.atlas import TextureAtlas
from labeller.synth.layout import PlacedObject, Surface
from labeller.synth.lighting import Lighting, bake_lighting
from labeller.synth.sensor import rgb_noise_bank, sensor_depth


@dataclass
class SynthFrame:
    """One rendered frame, all (H, W): rgb (.., 3) uint8 as written; depth_png uint16 mm as
    written (sensor model applied unless rendered with noisy=False; 0 = no measurement);
    depth_clean_m float32 metres, the exact ray-cast z (0 = nothing hit); inst uint16
    object ids from the noise-free cast (0 = table, walls, nothing), as in gt/masks."""

    rgb: np.ndarray
    depth_png: np.ndarray
    depth_clean_m: np.ndarray
    inst: np.ndarray


class SceneRenderer:
    """The ray-casting scene, texture atlas and per-pixel rays of one synthetic scene.

    surfaces: scene geometry (table frame); placed: the objects; seed: the scene's seed
    (frame t's noise comes from ``default_rng([seed, 100, t])``). `render` is thread-safe.
    """

    def __init__(self, camera: CameraIntrinsics, surfaces: Sequence[Surface],
                 placed: Sequence[PlacedObject], lighting: Lighting, seed: int):
        import open3d as o3d

        self.camera = camera
        self.lighting = lighting
        self.seed = seed
        self._scene = o3d.t.geometry.RaycastingScene()
        self._geoms: list[Surface] = []
        all_surfaces = [(s, np.eye(4)) for s in surfaces] + [(p.surface, p.T_table_obj)
                                                             for p in placed]
        self._geom_T: list[np.ndarray] = []
        for surf, T in all_surfaces:
            v = (surf.vertices @ T[:3, :3].T + T[:3, 3]).astype(np.float32)
            # The scene copies the vertices and triangles into its own buffers.
            gid = self._scene.add_triangles(tensor(v),
                                            tensor(surf.triangles.astype(np.uint32)))
            assert gid == len(self._geoms)
            self._geoms.append(surf)
            self._geom_T.append(T)
        G = len(self._geoms)
        # geometry id -> object id; the extra last entry is "no hit".
        self._gid_to_inst = np.array([s.obj_id for s in self._geoms] + [0], np.uint16)
        self._atlas = TextureAtlas.build(self._geoms, self._geom_T,
                                         [self._surface_texture(s) for s in self._geoms])
        rays_cam = pixel_rays_cam(self.camera).reshape(-1, 3)
        self._ray_x = np.ascontiguousarray(rays_cam[:, 0])
        self._ray_y = np.ascontiguousarray(rays_cam[:, 1])
        self._inv_ray_len = (1.0 / np.linalg.norm(rays_cam, axis=1)).astype(np.float32)
        self._n_geoms = G
        self._rgb_noise = rgb_noise_bank(self.seed, self.camera.height, self.camera.width)
        # Commit the scene now: later casts may run from several threads at once.
        self._scene.cast_rays(tensor(np.array([[0, 0, 0, 0, 0, 1]], np.float32)))

    def _surface_texture(self, s: Surface) -> np.ndarray:
        """The texture (H, W, 3) uint8 of `s` as the camera sees it: scene geometry with its
        light baked in, a plain colour patch for an untextured mesh."""
        if s.bake_step:
            return bake_lighting(s, self.lighting, self._scene)
        if s.texture is None:
            t = np.empty((8, 8, 3), np.uint8)
            t[:] = s.color_rgb
            return t
        return s.texture

    def render(self, T_table_cam: np.ndarray, t: int, noisy: bool = True,
               ray_threads: int = 0) -> SynthFrame:
        """Frame t seen from T_table_cam (4, 4): colour and depth as written (noisy unless
        `noisy=False`), the noise-free depth and the instance ids. ray_threads: threads
        per ray cast (0 = all cores)."""

        H, W = self.camera.height, self.camera.width
        N = H * W
        T = T_table_cam
        R, p = T[:3, :3].astype(np.float32), T[:3, 3].astype(np.float32)
        # Ray directions R @ (x, y, 1), one column at a time (cheaper than an (N,3)@(3,3)).
        X, Y = self._ray_x, self._ray_y
        rays = np.empty((N, 6), np.float32)
        for k in range(3):
            rays[:, k] = p[k]
            rays[:, 3 + k] = X * R[k, 0] + Y * R[k, 1] + R[k, 2]
        d = rays[:, 3:]
        ans = self._scene.cast_rays(tensor(rays), nthreads=ray_threads)
        t_hit = ans["t_hit"].numpy()
        hit = np.isfinite(t_hit)
        depth_clean = np.where(hit, t_hit, np.float32(0.0)).reshape(H, W)  # rays have z_cam = 1
        gid = np.minimum(ans["geometry_ids"].numpy().astype(np.int64), self._n_geoms)
        inst = self._gid_to_inst[gid].reshape(H, W)
        # Texture lookup through the atlas (misses land on the "no hit" patch).
        atlas = self._atlas
        fid = np.minimum(atlas.prim_offset[gid] + ans["primitive_ids"].numpy(), len(atlas.tri_uv) - 1)
        tri = atlas.tri_uv[fid]
        b = ans["primitive_uvs"].numpy()
        mx = tri[:, 0] + tri[:, 2] * b[:, 0] + tri[:, 4] * b[:, 1]
        my = tri[:, 1] + tri[:, 3] * b[:, 0] + tri[:, 5] * b[:, 1]
        # Normals facing the camera (table frame); |cos| of the viewing angle.
        nrm = ans["primitive_normals"].numpy()
        ndd = np.einsum("ij,ij->i", nrm, d)
        cos_flat = np.abs(ndd) * self._inv_ray_len
        cos_view = cos_flat.reshape(H, W)
        albedo = atlas.sample(mx, my, fid, t_hit, cos_flat, self.camera,
                              self._inv_ray_len).reshape(H, W, 3)
        # The scene geometry's texels carry their light already; objects are lit here:
        # Lambertian key light with hard shadows, plus ambient and a little sky from above.
        rgb = albedo
        on_obj = np.flatnonzero(inst.ravel() > 0)
        if len(on_obj):
            n_o = nrm[on_obj]
            n_o *= np.where(ndd[on_obj] > 0, np.float32(-1.0), np.float32(1.0))[:, None]
            L = self.lighting.dir_table.astype(np.float32)
            ndl = n_o @ L
            srays = np.empty((len(on_obj), 6), np.float32)
            srays[:, :3] = p + d[on_obj] * t_hit[on_obj, None] + n_o * np.float32(1e-3)
            srays[:, 3:] = L
            occluded = self._scene.test_occlusions(tensor(srays),
                                                  nthreads=ray_threads).numpy()
            light = self.lighting.factor(n_o[:, 2], np.where(occluded | (ndl < 0), np.float32(0.0), ndl))
            flat = rgb.reshape(-1, 3)
            flat[on_obj] *= light[:, None] * self.lighting.rgb.astype(np.float32)[None]
        rgb_f: np.ndarray = cv2.GaussianBlur(rgb, (3, 3), 0.6)  # the lens is not perfectly sharp
        rng = np.random.default_rng([self.seed, 100, t])
        if noisy:
            rgb_f += self._rgb_noise[int(rng.integers(len(self._rgb_noise)))]
        rgb8 = np.clip(np.rint(rgb_f), 0, 255).astype(np.uint8)
        depth_png = sensor_depth(depth_clean, cos_view, rng, noisy)
        return SynthFrame(rgb8, depth_png, depth_clean, inst.astype(np.uint16))
