"""Run the encoder + main decoder over images of any size, tile by tile, in batches.

Tiles are laid on the grid of :class:`TileGeometry`; a tile's outer margin is context
only and is discarded, so every output pixel is predicted from a tile in which it lies
at least ``margin_px`` from the edge. Uint8 pixels go to the device and are normalised
there (4x less to copy than float32), with autocast and channels-last.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from itertools import accumulate

import numpy as np
import torch

from wsi_ihc.infer.detect.geometry import TileGeometry
from wsi_ihc.model.checkpoint import ModelCard
from wsi_ihc.model.precision import default_device, resolve_precision

#: Test-time augmentation: the views a tile is predicted in, as (quarter turns, mirror);
#: their logits, turned back, are averaged. "flips" = identity, left-right, up-down and
#: both (4× the work); "d4" adds the four transposed views (8×).
TTA_VIEWS: dict[str, tuple[tuple[int, bool], ...]] = {
    "none": ((0, False),),
    "flips": ((0, False), (0, True), (2, True), (2, False)),
    "d4": tuple((turns, mirror) for turns in range(4) for mirror in (False, True)),
}


def batch_bounds(count: int, batch_size: int, split_rest: bool) -> list[tuple[int, int]]:
    """(start, stop) of each batch of ``count`` tiles: full batches, then the rest as one
    batch, or, with ``split_rest``, in power-of-two parts (binary digits of the rest).

    On a CPU each new batch shape leaves activations of a new size on the heap, and the
    partial batches of blocks at the tissue's edge take every size below the batch: glibc
    kept those freed sizes apart, and peak RSS grew with the slide (RESULTS.md: "Memory of
    the default command"). Power-of-two parts bound the shapes to log2(batch) + 1.
    """
    full, rest = divmod(count, batch_size)
    parts = [1 << bit for bit in range(rest.bit_length())[::-1] if rest >> bit & 1]
    sizes = [batch_size] * full + (parts if split_rest else [rest] * bool(rest))
    stops = list(accumulate(sizes))
    return list(zip([0, *stops], stops, strict=False))


class TilePredictor:
    """A model and its card, ready to turn RGB pixels at ``card.mpp`` into probabilities.

    ``model`` maps normalised (N, 3, T, T) tensors to ``{"main": logits (N, 2, T, T)}``.
    The model runs on one thread of its own, whichever thread calls: reading threads may
    share one predictor while the device runs one batch at a time. ``tta`` names the
    views of :data:`TTA_VIEWS` averaged per tile.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        card: ModelCard,
        device: str | None = None,
        precision: str = "auto",
        batch_size: int = 16,
        geometry: TileGeometry | None = None,
        tta: str = "none",
    ) -> None:
        if tta not in TTA_VIEWS:
            raise ValueError(f"tta must be one of {', '.join(TTA_VIEWS)}, got {tta!r}")
        self.views = TTA_VIEWS[tta]
        self.device = torch.device(device or default_device())
        self.precision_choice = resolve_precision(precision, str(self.device))
        self.precision = self.precision_choice.precision
        self.card = card
        self.batch_size = batch_size
        self.geometry = geometry or TileGeometry.for_tile(card.tile_px)
        self.model = model.to(self.device).eval().to(memory_format=torch.channels_last)
        self._mean = torch.tensor(card.mean, device=self.device).view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(card.std, device=self.device).view(1, 3, 1, 1) * 255.0
        # One thread for the model, not whichever Dask thread got the block: on a CPU torch's OpenMP
        # team belongs to the thread that starts it, and a team per calling thread spins against the
        # others (predict stage 3-4 % slower, RESULTS.md: "Reading tiles directly").
        self._model_thread = ThreadPoolExecutor(1, thread_name_prefix="wsi-ihc-model")

    def _autocast(self):
        dtype = self.precision_choice.autocast_dtype
        if dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def predict_tiles(self, tiles: np.ndarray, margin_px: int = 0) -> np.ndarray:
        """(N, T, T, 3) uint8 -> (N, 2, T - 2m, T - 2m) float16 probabilities (sigmoid).

        The ``margin_px`` border of each tile is cut on the device, before the sigmoid and
        the copy back (44 % fewer bytes at margin = tile/8): on an H200, tiles/s hardly
        depended on the encoder, so per-batch host work, not arithmetic, set the rate.
        """
        return self._model_thread.submit(self._predict_tiles, tiles, margin_px).result()

    @torch.inference_mode()
    def _predict_tiles(self, tiles: np.ndarray, margin_px: int) -> np.ndarray:
        """:meth:`predict_tiles` on the model thread."""
        outputs = []
        inner = slice(margin_px, tiles.shape[1] - margin_px)
        split = self.device.type == "cpu"
        for start, stop in batch_bounds(len(tiles), self.batch_size, split):
            chunk = tiles[start:stop]
            batch = torch.from_numpy(np.require(chunk, requirements=["C", "W"]))
            if self.device.type == "cuda":
                batch = batch.pin_memory()
            batch = batch.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
            batch = ((batch - self._mean) / self._std).contiguous(memory_format=torch.channels_last)
            core = self._logits(batch)[:, :, inner, inner].float()
            outputs.append(torch.sigmoid(core).half().cpu().numpy())
        return np.concatenate(outputs) if outputs else np.zeros((0, 2, 0, 0), np.float16)

    def _logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Main-decoder logits, averaged (in float32) over the test-time views; without
        views, as the model gives them, cut and converted by the caller (less to copy)."""
        if len(self.views) == 1:
            with self._autocast():
                return self.model(batch)["main"]
        total = None
        for turns, mirror in self.views:
            view = batch.flip(-1) if mirror else batch
            view = torch.rot90(view, turns, dims=(-2, -1))
            with self._autocast():
                logits = self.model(view.contiguous(memory_format=torch.channels_last))["main"]
            logits = torch.rot90(logits.float(), -turns, dims=(-2, -1))
            logits = logits.flip(-1) if mirror else logits
            total = logits if total is None else total + logits
        return total / len(self.views)

    def predict_region(self, region: np.ndarray, run: np.ndarray | None = None) -> np.ndarray:
        """Probabilities for the tile cores of a region read with the margins included.

        ``region`` is (rows·S + 2m, cols·S + 2m, 3) uint8 for stride S and margin m; the
        result is (2, rows·S, cols·S) float16, the tile cores stitched edge to edge. Only
        the tiles where ``run`` (rows x cols, bool) is set are run; the others are 0.
        """
        g = self.geometry
        rows = (region.shape[0] - 2 * g.margin_px) // g.stride_px
        cols = (region.shape[1] - 2 * g.margin_px) // g.stride_px
        windows = np.lib.stride_tricks.sliding_window_view(region, (g.tile_px, g.tile_px, 3))
        tiles = windows[:: g.stride_px, :: g.stride_px, 0][:rows, :cols]
        if run is None:
            core = self.predict_tiles(tiles.reshape(-1, g.tile_px, g.tile_px, 3), g.margin_px)
        else:
            core = np.zeros((rows * cols, 2, g.stride_px, g.stride_px), np.float16)
            if run.any():
                core[run.ravel()] = self.predict_tiles(tiles[run], g.margin_px)
        core = core.reshape(rows, cols, 2, g.stride_px, g.stride_px)
        return core.transpose(2, 0, 3, 1, 4).reshape(2, rows * g.stride_px, cols * g.stride_px)

    def predict(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 at the model's mpp -> (2, H, W) float32 probabilities.

        The image is mirrored at its borders to fill the tile grid, as training crops
        never see padding.
        """
        g = self.geometry
        height, width = image.shape[:2]
        rows, cols = g.grid(height), g.grid(width)
        pad_bottom = rows * g.stride_px - height + g.margin_px
        pad_right = cols * g.stride_px - width + g.margin_px
        padded = np.pad(
            image, ((g.margin_px, pad_bottom), (g.margin_px, pad_right), (0, 0)), mode="symmetric"
        )
        return self.predict_region(padded)[:, :height, :width].astype(np.float32)


def to_model_pixels(
    image: np.ndarray, image_mpp: float, model_mpp: float
) -> tuple[np.ndarray, float]:
    """The image resampled to the model's pixel size, and the factor (model px per image px).

    Area averaging to shrink, bilinear to enlarge; unchanged when the sizes agree.
    """
    import cv2

    scale = image_mpp / model_mpp
    if abs(scale - 1.0) <= 1e-3:
        return image, 1.0
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interpolation), scale
