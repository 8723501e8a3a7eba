"""``bench.json`` accumulates: a result is replaced only by a newer one of the same task and recipe
for the same checkpoint, so benchmarking one task never drops another's result; results of other
recipes stay beside the newest (``other_recipes``), each saying which recipe it came from."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import fields
from typing import Any

from zoo.benchmarks.scoring import suite_average

log = logging.getLogger(__name__)


def recipe_id(recipe: dict[str, Any]) -> str:
    """The recipe's stable id (``Recipe.hash`` of the same values: options at their neutral values left out,
    so results recorded before an option existed keep their id)."""
    from zoo.benchmarks.recipe import neutral_recipe

    return hashlib.sha256(json.dumps(neutral_recipe(recipe), sort_keys=True).encode()).hexdigest()[:16]


def recipe_label(recipe: dict[str, Any]) -> str:
    """``recipe 1a2b… (lr=5e-05, epochs=2)``: the id and the values that differ from the defaults."""
    from zoo.benchmarks.recipe import Recipe

    defaults = {f.name: f.default for f in fields(Recipe)}
    changed = [f"{k}={v}" for k, v in recipe.items() if k in defaults and defaults[k] != v]
    return f"recipe {recipe_id(recipe)[:8]} ({', '.join(changed) if changed else 'defaults'})"


def _key(task: dict[str, Any]) -> tuple[str, str]:
    return task["task"], task.get("recipe_id") or recipe_id(task["recipe"])


def merge_suite(old: dict[str, Any], new: dict[str, Any], order: list[str]) -> dict[str, Any]:
    """``new`` (one ``bench`` invocation's suite entry) merged into ``old`` (the saved one).

    Per model (same name and checkpoint): every (task, recipe) result is kept, the newest one of each;
    ``tasks`` holds the newest result of each task and the average is over those. A model whose
    checkpoint changed starts over (older weights' scores are not averaged with newer ones). Tasks keep
    the order they were first benchmarked in (a new invocation's tasks in its order), then ``order``.
    """
    order = list(dict.fromkeys([*old.get("tasks", []), *new.get("tasks", []), *order]))
    models = []
    for model in new.get("models", []):
        prev = next((m for m in old.get("models", []) if isinstance(m, dict) and m.get("name") == model["name"]
                     and m.get("from_scratch") == model["from_scratch"]), None)
        if prev is not None and prev.get("checkpoint_id") != model["checkpoint_id"]:
            log.info("bench.json: %s has a new checkpoint; results of the previous one are dropped", model["name"])
            prev = None
        results: dict[tuple[str, str], dict[str, Any]] = {}
        if prev is not None:
            for task in [*prev.get("other_recipes", []), *prev.get("tasks", {}).values()]:
                results[_key(task)] = task
        for task in model["tasks"].values():
            results[_key(task)] = task
        newest: dict[str, dict[str, Any]] = {}
        for task in sorted(results.values(), key=lambda t: t.get("created", 0.0)):
            newest[task["task"]] = task
        ranked = sorted(newest, key=lambda t: order.index(t) if t in order else len(order))
        model = {**model, "tasks": {t: newest[t] for t in ranked}}
        others = [t for t in results.values() if newest[t["task"]] is not t]
        if others:
            model["other_recipes"] = others
        model["average"] = suite_average({t: r["score"] for t, r in model["tasks"].items()})
        models.append(model)
    kept = [m for m in old.get("models", []) if isinstance(m, dict)
            and not any(m.get("name") == n["name"] and m.get("from_scratch") == n["from_scratch"] for n in models)]
    merged = {**new, "models": models + kept}
    names = {t for m in merged["models"] for t in m.get("tasks", {})}
    merged["tasks"] = sorted(names, key=lambda t: order.index(t) if t in order else len(order))
    return merged
