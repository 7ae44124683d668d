"""Jobs over run directories, shared by the CLI and the explorer: learn gates, search a
budget, the whole pipeline (learn -> search -> train) with resume across stages, the race
(a learned structure against uniform at the same MACs, with the dense reference); measure a
run's speed and search by latency.

learn_job (learn_run, resume_learn), search_job (search_run), pipeline (pipeline_run,
resume_run), race (prepare_race, train_arm), dense_reference (find_dense, prepare_dense),
speed (bench_run: RUN/speed.json), latency_search (search_by_latency, latency_search_run,
dense_latency_ms). Each job reads and writes a run directory, so whatever started it, a
later command or the explorer picks up where it ended.

Layer: above training, runs, the method and data; below the CLI, which it never imports.
"""
from engine.jobs.dense_reference import find_dense, prepare_dense
from engine.jobs.latency_search import LatencyResult, dense_latency_ms, latency_search_run, search_by_latency
from engine.jobs.learn_job import CHECKPOINT_EVERY, learn_run, resume_learn
from engine.jobs.pipeline import pipeline_run, resume_run
from engine.jobs.race import DEMO, RACE_FILE, Race, prepare_race, train_arm
from engine.jobs.search_job import search_run
from engine.jobs.speed import BenchOptions, bench_run

__all__ = ["CHECKPOINT_EVERY", "DEMO", "RACE_FILE", "BenchOptions", "LatencyResult", "Race", "bench_run",
           "dense_latency_ms", "find_dense", "latency_search_run", "learn_run", "pipeline_run", "prepare_dense",
           "prepare_race", "resume_learn", "resume_run", "search_by_latency", "search_run", "train_arm"]
