"""The public annotated sets models are trained and judged on, their splits and pixel sizes.

The files themselves are never copied or shipped (their terms allow research and
benchmark use only): a split is a folder of symbolic links in BCData's layout
(``images/``, ``points/``) with a ``dataset.json`` stating the pixel size used.

- BCData (Ki-67, ×40 slide scans): tiles 0-17 train, 18-25 test only.
- ki67-camera (Ki-67, another lab, camera photos, no recorded pixel size): 3 training
  images, 2 test-only images, split by patient.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class Split:
    """Named images of one source folder, at a stated pixel size.

    ``misstated`` ≠ 1 gives the model ``mpp × misstated`` instead, as a scanner that records
    it wrong would: a scale-robustness set (scored with the matching radius scaled the
    same way, so a hit is within the same true distance).
    """

    source: str  # folder name under ../shared/data
    names: tuple[str, ...]
    mpp: float
    misstated: float = 1.0

    @property
    def stated_mpp(self) -> float:
        return self.mpp * self.misstated

    def link(self, data_root: Path, out: Path) -> Path:
        """``out`` in BCData's layout with symlinks to this split's files, and its mpp."""
        folder = data_root / self.source
        for sub in ("images", "points"):
            (out / sub).mkdir(parents=True, exist_ok=True)
        for name in self.names:
            image = next((folder / "images").glob(f"{name}.*"))
            pairs = (
                (out / "images" / image.name, image),
                (out / "points" / f"{name}.csv", folder / "points" / f"{name}.csv"),
            )
            for target, path in pairs:
                if not target.exists():
                    with contextlib.suppress(FileExistsError):  # a parallel run was first
                        target.symlink_to(path.resolve())
        (out / "dataset.json").write_text(json.dumps({"mpp": self.stated_mpp}) + "\n")
        return out


#: BCData's pixel size: nuclei span 40-60 px, a ×40 scan (../shared/data/README.md).
BCDATA_MPP = 0.25
#: ki67-camera's, chosen on its three *training* images (the files record none): a BCData-only model
#: scores best there at 0.10-0.12 µm/px (agnostic F1 0.578 / 0.672 / 0.664 / 0.567 / 0.373 at 0.08 /
#: 0.10 / 0.12 / 0.15 / 0.19; studies/STUDIES.md: "Models on real IHC"). The data README's 0.19 came
#: from eyeballed BCData nucleus sizes; wsi_ihc.infer.nuclei_ruler's nuclei put it lower still
#: (0.067: blurred camera nuclei measure large), which the F1 curve does not support.
CAMERA_MPP = 0.1

BCDATA_TRAIN = Split("bcdata", tuple(str(i) for i in range(18)), BCDATA_MPP)
BCDATA_TEST = Split("bcdata", tuple(str(i) for i in range(18, 26)), BCDATA_MPP)
CAMERA_TRAIN = Split("ki67-camera", ("1309620-A2-27", "1309620-A2-28", "8682421-A3-26"), CAMERA_MPP)
CAMERA_TEST = Split("ki67-camera", ("1329941-B3-25", "1329941-B3-26"), CAMERA_MPP)

#: Sets a model may be trained on, by the name recipes use; each is one ``--data`` source.
TRAIN_SETS = {"bcdata-0-17": BCDATA_TRAIN, "camera-train": CAMERA_TRAIN}

#: Another lab's images a BCData-only model never saw, scored to *choose* among options
#: meant to carry a model across labs (stain augmentation, a pixel size), so that the test
#: images never choose anything. Not scored for a model trained on them.
CHOOSING_SETS = {"camera-train": CAMERA_TRAIN}

#: Held-out sets every reported model is scored on, by the name results use; the last two
#: are BCData 18-25 with its pixel size given as 0.8× and 1.25× the true one.
TEST_SETS = {
    "bcdata-18-25": BCDATA_TEST,
    "camera-test": CAMERA_TEST,
    "bcdata-18-25-mpp0.8x": replace(BCDATA_TEST, misstated=0.8),
    "bcdata-18-25-mpp1.25x": replace(BCDATA_TEST, misstated=1.25),
}
