"""Plot a task-aware model's task embeddings (PCA) per task and data set.

    python -m espnet_mtl.bin.plot_task_embeddings --st_exp exp/st_task_aware \\
        --data_dir dump/raw/tst-COMMON.en-de --data_dir dump/raw/dev.en-de \\
        [--model_file exp/.../valid.acc.best.pth] [--max_per_set 200] [--out PNG]

Every example of a data dir (speech + translation + transcript) is embedded
as an example of each task it can be (ST: speech and translation, ASR:
speech and transcript, MT: transcript and translation) by the model's TCN,
from its own sequences. The points are projected on the first two principal
components; colour = task, marker = data set (the paper's Figure 2). The
explicit TCN has one embedding per task (three points). The text files of a
data dir are found by the names the training config reads
(`train_data_path_and_name_and_type`, e.g. text.tc.de and text.lc.rm.en).
Default output: <st_exp>/images/task_embeddings.png.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import yaml


def _text_names(config: dict) -> dict:
    """Data name (text, src_text) -> the file name training read it from."""
    names = {}
    for path, name, _ in config.get("train_data_path_and_name_and_type", []):
        if name in ("text", "src_text"):
            names[name] = Path(path).name
    missing = {"text", "src_text"} - set(names)
    if missing:
        raise SystemExit(f"the training config reads no {sorted(missing)}: the task "
                         "embeddings need speech, translation and transcript")
    return names


def embed(st_exp: Path, model_file: Path, data_dirs, max_per_set: int):
    import torch

    from espnet_mtl.models.task_aware import TaskAwareSTModel
    from espnet_mtl.tasks.st import MTLSTTask

    config_file = st_exp / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    model, args = MTLSTTask.build_model_from_file(config_file, model_file, "cpu")
    if not isinstance(model, TaskAwareSTModel):
        raise SystemExit(f"{config_file}: model '{config.get('model')}' has no task "
                         "embeddings; train with `model: task_aware`")
    model.eval()
    names = _text_names(config)
    points = []  # (data set, task, te)
    for data_dir in data_dirs:
        files = {"speech": (data_dir / "wav.scp", "sound"),
                 "text": (data_dir / names["text"], "text"),
                 "src_text": (data_dir / names["src_text"], "text")}
        for name, (path, _) in files.items():
            if not path.is_file():
                raise SystemExit(f"{path}: missing ({name} of data set {data_dir})")
        loader = MTLSTTask.build_streaming_iterator(
            [(str(p), n, t) for n, (p, t) in files.items()], dtype="float32", batch_size=1,
            key_file=None, num_workers=0, preprocess_fn=MTLSTTask.build_preprocess_fn(
                args, False), collate_fn=MTLSTTask.build_collate_fn(args, False),
            allow_variable_data_keys=False, inference=False)
        done = 0
        for _, batch in loader:
            if done == max_per_set:
                break
            for task, te in model.example_embeddings(**batch).items():
                points += [(data_dir.name, task, row) for row in te]
            done += 1
        logging.info(f"{data_dir}: {done} examples embedded")
    if not points:
        raise SystemExit("no example in the data dirs")
    return model.tcn_name, points


def plot(points, png: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    x = torch.stack([p[2] for p in points]).double()
    x = x - x.mean(0)
    if x.abs().max() == 0:
        xy = torch.zeros(len(points), 2, dtype=torch.float64)
    else:
        _, _, v = torch.linalg.svd(x, full_matrices=False)
        xy = x @ v[:2].T if v.size(0) > 1 else torch.cat([x @ v[:1].T, 0 * x[:, :1]], 1)
    sets = sorted({p[0] for p in points})
    tasks = sorted({p[1] for p in points})
    markers = "o^sDvP*X"
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for t, task in enumerate(tasks):
        for s, data_set in enumerate(sets):
            idx = [i for i, p in enumerate(points) if p[0] == data_set and p[1] == task]
            if idx:
                ax.scatter(xy[idx, 0], xy[idx, 1], s=14, alpha=0.7, color=f"C{t}",
                           marker=markers[s % len(markers)], label=f"{task} / {data_set}")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(title)
    ax.legend(fontsize=7)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return png


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--st_exp", type=Path, required=True)
    p.add_argument("--model_file", type=Path,
                   help="default: <st_exp>/valid.acc.ave.pth (what stage 12 decodes)")
    p.add_argument("--data_dir", type=Path, action="append", required=True)
    p.add_argument("--max_per_set", type=int, default=200)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model_file = args.model_file or args.st_exp / "valid.acc.ave.pth"
    if not model_file.is_file():
        raise SystemExit(f"{model_file}: no such model file; pass --model_file "
                         "(e.g. <st_exp>/valid.acc.best.pth)")
    tcn, points = embed(args.st_exp, model_file, args.data_dir, args.max_per_set)
    out = args.out or args.st_exp / "images" / "task_embeddings.png"
    plot(points, out, f"task embeddings ({tcn} TCN), PCA")
    print(out)


if __name__ == "__main__":
    main()
