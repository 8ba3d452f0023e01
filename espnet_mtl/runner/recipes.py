"""Recipe folders: find the repository's recipes and make private copies.

A copy shares the driver (st.sh is a link) and the package, but has its own
data/, dump/ and exp/: tests and benchmarks run recipes this way, and it is
how a researcher starts a recipe for a new corpus from an existing one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECIPE_FILES = ("run.sh", "cmd.sh", "db.sh", "recipe_options.sh", "conf", "local")


def copy_recipe(corpus: str, dst: str | Path, task: str = "st1") -> Path:
    """Copy egs2/<corpus>/<task> to <dst>/egs2/<corpus>/<task>; returns the new recipe dir."""
    src = ROOT / "egs2" / corpus / task
    if not src.is_dir():
        raise FileNotFoundError(f"no recipe {src}")
    recipe = Path(dst) / "egs2" / corpus / task
    recipe.mkdir(parents=True)
    for name in RECIPE_FILES:
        if (src / name).is_dir():
            shutil.copytree(src / name, recipe / name)  # links (shared configs) become files
        elif (src / name).exists():
            shutil.copy2(src / name, recipe / name)
    (recipe / "st.sh").symlink_to(ROOT / "egs2" / "TEMPLATE" / task / "st.sh")
    # The original path.sh finds the repository from its own location.
    (recipe / "path.sh").write_text(f". {src / 'path.sh'}\n")
    return recipe
