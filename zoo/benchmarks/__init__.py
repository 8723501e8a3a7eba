"""Downstream benchmarks: task specs (GLUE, CLUE as data), readers for the official layouts,
fine-tuning with task heads, the official metrics, and reports.

Public API::

    from zoo.benchmarks import run_bench, Recipe
    result = run_bench(["runs/bert-mlm"], suite="glue", tasks="sst2,cola", data_dir="data/glue", seeds=3)
    result.models[0].tasks["sst2"].summary()   # {"accuracy": {"median": ..., "min": ..., ...}}

Importing this package is cheap (task specs are plain data); the heavier modules load on use.
"""

from __future__ import annotations

from zoo._lazy import lazy_getattr

_EXPORTS = {
    "TaskSpec": "zoo.benchmarks.tasks", "Columns": "zoo.benchmarks.tasks", "HubSource": "zoo.benchmarks.tasks",
    "get_task": "zoo.benchmarks.tasks", "task_names": "zoo.benchmarks.tasks", "resolve_tasks": "zoo.benchmarks.tasks",
    "Example": "zoo.benchmarks.data", "Split": "zoo.benchmarks.data", "TaskData": "zoo.benchmarks.data",
    "load_task_data": "zoo.benchmarks.data",
    "Recipe": "zoo.benchmarks.finetune", "finetune": "zoo.benchmarks.finetune",
    "FinetuneResult": "zoo.benchmarks.finetune", "recipes_for": "zoo.benchmarks.finetune",
    "compute_metrics": "zoo.benchmarks.scoring", "task_score": "zoo.benchmarks.scoring",
    "suite_average": "zoo.benchmarks.scoring",
    "ModelSource": "zoo.benchmarks.source", "open_source": "zoo.benchmarks.source",
    "from_backbone": "zoo.benchmarks.source",
    "run_bench": "zoo.benchmarks.bench", "BenchResult": "zoo.benchmarks.bench",
    "ModelResult": "zoo.benchmarks.bench", "TaskResult": "zoo.benchmarks.bench",
    "SeedScores": "zoo.benchmarks.bench", "bench_result_from_dict": "zoo.benchmarks.bench",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
