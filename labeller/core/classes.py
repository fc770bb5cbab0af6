"""The ten PROPS object classes and what every stage needs to know about them.

Label order, YCB-Video (BOP ycbv) ids, YCB codes of the shared meshes, sizes of the
procedural stand-ins, display colours and symmetries all come from this one table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ObjectClass:
    """One PROPS class.

    `size_m` is the axis-aligned extent (x, y, z) of the YCB-Video model in metres;
    `shape` is what the procedural stand-in looks like ("box", "cylinder", "bottle",
    "mug"). `symmetry_axis` is the model-frame axis a continuous *shape* symmetry turns
    about (None when the class has none): what ICP cannot tell apart, and what
    `labeller export --format bop --geometric-symmetries` declares.
    `appearance_turns` are the symmetries of the textured object, as the BOP ycbv
    dataset's models_info.json declares them for this YCB-V id (`symmetries_discrete`):
    (model-frame axis, angle in degrees) of each turn that leaves the object looking the
    same, about that axis through the centre of the model's bounding box. A printed label
    breaks a can's shape symmetry, so only the classes whose print repeats have any.
    """

    label: int
    name: str
    ycbv_id: int
    ycb_code: str
    size_m: tuple[float, float, float]
    shape: str
    color_rgb: tuple[int, int, int]
    symmetry_axis: tuple[float, float, float] | None = None
    appearance_turns: tuple[tuple[tuple[float, float, float], float], ...] = ()

    @property
    def ycb_folder(self) -> str:
        """Folder name of the shared YCB meshes, e.g. '025_mug'."""
        return f"{self.ycb_code}_{self.name}"


# Sizes read off the YCB-Video meshes in ../shared/data/ycb_models (rounded to mm).
# Shape: the cans turn freely about their z axis, the marker about its long (y) axis.
# Appearance (BOP ycbv models_info.json, obj 1 and 18 the only PROPS classes it marks):
# the master chef can and the marker look the same turned 180 degrees about that axis;
# the soup and tuna cans, whose labels go round once, have no symmetry.
HALF_TURN_DEG = 180.0
PROPS_CLASSES: tuple[ObjectClass, ...] = (
    ObjectClass(0, "master_chef_can", 1, "002", (0.102, 0.102, 0.141), "cylinder", (40, 90, 200), (0.0, 0.0, 1.0),
                appearance_turns=(((0.0, 0.0, 1.0), HALF_TURN_DEG),)),
    ObjectClass(1, "cracker_box", 2, "003", (0.072, 0.164, 0.213), "box", (200, 40, 40)),
    ObjectClass(2, "sugar_box", 3, "004", (0.049, 0.094, 0.176), "box", (230, 210, 80)),
    ObjectClass(3, "tomato_soup_can", 4, "005", (0.068, 0.068, 0.101), "cylinder", (220, 90, 60), (0.0, 0.0, 1.0)),
    ObjectClass(4, "mustard_bottle", 5, "006", (0.097, 0.067, 0.192), "bottle", (250, 220, 0)),
    ObjectClass(5, "tuna_fish_can", 6, "007", (0.086, 0.086, 0.034), "cylinder", (70, 130, 180), (0.0, 0.0, 1.0)),
    ObjectClass(6, "gelatin_box", 8, "009", (0.090, 0.101, 0.030), "box", (230, 120, 170)),
    ObjectClass(7, "potted_meat_can", 9, "010", (0.102, 0.060, 0.083), "box", (60, 90, 160)),
    ObjectClass(8, "mug", 14, "025", (0.117, 0.093, 0.082), "mug", (200, 30, 30)),
    ObjectClass(9, "large_marker", 18, "040", (0.021, 0.121, 0.019), "cylinder_y", (40, 40, 40), (0.0, 1.0, 0.0),
                appearance_turns=(((0.0, 1.0, 0.0), HALF_TURN_DEG),)),
)

PROPS_CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in PROPS_CLASSES)
BY_NAME: dict[str, ObjectClass] = {c.name: c for c in PROPS_CLASSES}
BY_YCBV_ID: dict[int, ObjectClass] = {c.ycbv_id: c for c in PROPS_CLASSES}

# BOP obj_id for a class outside the ten: 100 + its index in the document's `classes`.
BOP_OTHER_ID_BASE = 100


def class_color(name: str, index: int = 0) -> tuple[int, int, int]:
    """Display colour (RGB) for a class; classes outside PROPS get a stable hue."""
    if name in BY_NAME:
        return BY_NAME[name].color_rgb
    import colorsys
    import zlib

    # crc32, not hash(): str hashes change between processes.
    h = (zlib.crc32(name.encode()) % 360) / 360.0 if index == 0 else (index * 0.618) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.7, 0.9)
    return int(r * 255), int(g * 255), int(b * 255)
