"""methods × scenarios × seeds, reusing finished runs; the body of run_bench.py."""

from __future__ import annotations

import hashlib
import json
import os

import torch

from .checkpoint import atomic_write_text
from .results import write_results
from .runner import make_evaluator, run_method


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


def config_key(config: dict) -> str:
    return hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:10]


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def run_all(args, configs: dict, device: torch.device) -> str:
    from baselines import MethodContext, get_method, memory_budget
    from scenarios import build_scenario

    from run_bench import scenario_label

    runs, notes = [], []
    for name in args.scenario:
        config = configs[name]
        label = scenario_label(name, args.n_experiences)
        for seed in args.seeds:
            scenario = None
            for method in args.methods:
                run_config = {"scenario": name, "n_experiences": args.n_experiences, "class_order": args.class_order,
                              "seed": seed, "method": method, "preset": args.preset, "settings": config}
                key = config_key(run_config)
                where = os.path.join(_slug(label), method, f"seed{seed}")
                record_path = os.path.join(args.out, "records", where + ".json")
                if os.path.exists(record_path):
                    with open(record_path) as fh:
                        record = json.load(fh)
                    if record.get("config_key") == key:
                        runs.append(record)
                        continue
                if scenario is None:
                    scenario = build_scenario(name, args.n_experiences, seed=seed, class_order=args.class_order,
                                              data_root=args.data_root, download=not args.no_download)
                tb_dir = os.path.join(args.out, "tensorboard", _slug(label), method, f"seed{seed}")
                ctx = MethodContext(
                    image_shape=scenario.image_shape, n_classes=scenario.n_classes, device=device,
                    evaluator=make_evaluator(tb_dir), backbone=config["backbone"], size=config["size"],
                    feature_dim=config["feature_dim"], epochs=config["epochs"], batch_size=config["batch_size"],
                    eval_batch_size=config["eval_batch_size"], lr=config["lr"], mem_size=config["mem_size"],
                    options={"ctrl": config["ctrl"], "n_experiences": len(scenario.train_sizes)},
                )
                module = get_method(method)
                result = run_method(module.build, ctx, scenario,
                                    os.path.join(args.out, "checkpoints", where + f"-{key}.pt"), seed,
                                    progress=not args.no_progress, label=f"{label} {method} seed {seed}",
                                    state_attributes=getattr(module, "STATE_ATTRIBUTES", ()))
                strategy = result.pop("strategy")
                record = {"method": method, "seed": seed, "scenario": label, **result,
                          "memory_budget": memory_budget(method, ctx, strategy), "device": device_name(device),
                          "preset": args.preset, "config_key": key, "settings": config}
                if method == "ctrl":
                    record["classifier_protocol"] = strategy.classifier_protocol
                atomic_write_text(record_path, json.dumps(record, indent=2))
                runs.append(record)
                write_results(args.out, runs, args.methods, _notes(runs, args))
    return write_results(args.out, runs, args.methods, _notes(runs, args))


def _notes(runs: list[dict], args) -> list[str]:
    from ctrl_bench.strategy import CLASSIFIER_PROTOCOLS
    devices = sorted({r["device"] for r in runs})
    notes = [f"preset: {args.preset}; device: {', '.join(devices)}; mean ± std over seeds {' '.join(map(str, args.seeds))}",
             "Last: accuracy on all classes after the final experience; Avg: mean over experiences of the accuracy "
             "on the classes seen so far (first experience included)"]
    protocols = sorted({r["classifier_protocol"] for r in runs if "classifier_protocol" in r})
    notes += [f"ctrl classifier: {CLASSIFIER_PROTOCOLS[p]}" for p in protocols]
    return notes
