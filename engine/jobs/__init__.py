"""Jobs over run directories, shared by the CLI and the explorer: learn gates, search a
budget, the whole pipeline (learn -> search -> train) with resume across stages, and the race
(a learned structure against uniform at the same MACs, with the dense reference).

learn_job (learn_run, resume_learn), search_job (search_run), pipeline (pipeline_run,
resume_run), race (prepare_race, train_arm), dense_reference (find_dense, prepare_dense).
Each job reads and writes a run directory, so whatever started it, a later command or the
explorer picks up where it ended.

Layer: above training, runs, the method and data; below the CLI, which it never imports.
"""
from engine.jobs.dense_reference import find_dense, prepare_dense
from engine.jobs.learn_job import CHECKPOINT_EVERY, learn_run, resume_learn
from engine.jobs.pipeline import pipeline_run, resume_run
from engine.jobs.race import DEMO, RACE_FILE, Race, prepare_race, train_arm
from engine.jobs.search_job import search_run

__all__ = ["CHECKPOINT_EVERY", "DEMO", "RACE_FILE", "Race", "find_dense", "learn_run", "pipeline_run", "prepare_dense",
           "prepare_race", "resume_learn", "resume_run", "search_run", "train_arm"]
