"""Reindex jobs in the catalog: each re-embedding of a collection with another encoder, durable.

A mixin of `router.catalog.Catalog` (its connection, lock and transactions). A job row holds what
a restart needs to resume the job (the target encoder, the new generation's spec, the backfill's
cursor) and, once decided, the quality gate's figures, so `describe` shows every decision with the
numbers it was made on. Promotion is one transaction: the collection's spec (its encoder, dim and
embedding generation) and the job's state change together, so after a crash the collection is
served by exactly one generation, the old or the new.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from simsearch.contract.errors import FailedPrecondition, excerpt

REINDEX_JOBS = """CREATE TABLE reindex_jobs (
        tenant       TEXT NOT NULL,
        collection   TEXT NOT NULL,
        generation   INTEGER NOT NULL,  -- the embedding generation this job builds
        encoder      TEXT NOT NULL,     -- the target encoder, name@version
        from_encoder TEXT NOT NULL,     -- the encoder serving when it started
        spec         TEXT NOT NULL,     -- the new generation's CollectionSpec as JSON
        state        TEXT NOT NULL,     -- see ACTIVE and FINAL
        cursor       TEXT NOT NULL DEFAULT '',   -- the backfill's last copied id (resumes after it)
        copied       INTEGER NOT NULL DEFAULT 0,
        options      TEXT NOT NULL DEFAULT '{}', -- the request's gate and canary options, JSON
        decision     TEXT NOT NULL DEFAULT '{}', -- the gate's and canary's figures, JSON
        error        TEXT NOT NULL DEFAULT '',
        started_at   REAL NOT NULL,
        updated_at   REAL NOT NULL,
        PRIMARY KEY (tenant, collection, generation)
    )"""
# building: copying every point into the new generation (writes go to both); evaluating: the gate runs;
# canary: a fraction of searches go to the new generation (writes still go to both).
ACTIVE = ("building", "evaluating", "canary")
# promoted: the new generation serves; refused: the gate kept the old one; rolled-back: the canary regressed;
# failed: an error stopped it (the message says which); cancelled: an operator stopped it.
FINAL = ("promoted", "refused", "rolled-back", "failed", "cancelled")


@dataclass(frozen=True)
class ReindexJob:
    tenant: str
    collection: str
    generation: int
    encoder: str
    from_encoder: str
    spec: dict[str, Any]  # the new generation's CollectionSpec fields (index as a dict)
    state: str = "building"
    cursor: str = ""
    copied: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    decision: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    started_at: float = 0.0
    updated_at: float = 0.0

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def _row(self) -> tuple:
        return (self.tenant, self.collection, self.generation, self.encoder, self.from_encoder,
                json.dumps(self.spec, sort_keys=True), self.state, self.cursor, self.copied,
                json.dumps(self.options, sort_keys=True), json.dumps(self.decision, sort_keys=True), self.error,
                self.started_at, self.updated_at)

    @classmethod
    def from_row(cls, row: tuple) -> "ReindexJob":
        (tenant, collection, generation, encoder, from_encoder, spec, state, cursor, copied, options, decision,
         error, started_at, updated_at) = row
        return cls(tenant, collection, generation, encoder, from_encoder, json.loads(spec), state, cursor, copied,
                   json.loads(options), json.loads(decision), error, started_at, updated_at)


_COLUMNS = ("tenant, collection, generation, encoder, from_encoder, spec, state, cursor, copied, options, "
            "decision, error, started_at, updated_at")


class ReindexMixin:
    """Reindex jobs: the in-memory copy `_jobs` ((tenant, collection) -> jobs, newest first) is replaced after
    each commit, never changed in place."""

    _jobs: dict[tuple[str, str], tuple[ReindexJob, ...]]

    def _load_reindex(self) -> None:
        jobs: dict[tuple[str, str], list[ReindexJob]] = {}
        for row in self._db.execute(f"SELECT {_COLUMNS} FROM reindex_jobs ORDER BY generation DESC"):  # type: ignore
            job = ReindexJob.from_row(row)
            jobs.setdefault((job.tenant, job.collection), []).append(job)
        self._jobs = {k: tuple(v) for k, v in jobs.items()}

    def reindex_jobs(self, tenant: str, collection: str) -> tuple[ReindexJob, ...]:
        """The collection's jobs, newest first."""
        return self._jobs.get((tenant, collection), ())

    def active_reindex(self, tenant: str, collection: str) -> ReindexJob | None:
        jobs = self.reindex_jobs(tenant, collection)
        return jobs[0] if jobs and jobs[0].active else None

    def start_reindex(self, job: ReindexJob) -> ReindexJob:
        """Commit a new job. FailedPrecondition when the collection has one running."""
        with self._lock:  # type: ignore[attr-defined]
            running = self.active_reindex(job.tenant, job.collection)
            if running is not None:
                raise FailedPrecondition(f"collection {excerpt(job.collection)} is already being reindexed to "
                                         f"{running.encoder} ({running.state}); wait for it or cancel it",
                                         field="collection")
            self.get(job.tenant, job.collection)  # type: ignore[attr-defined]
            now = time.time()
            job = replace(job, started_at=now, updated_at=now)
            self._commit_job(job, "INSERT INTO reindex_jobs (" + _COLUMNS + ") VALUES (" +
                             ", ".join("?" * 14) + ")", job._row(), "start the reindex")
            return job

    def update_reindex(self, job: ReindexJob) -> ReindexJob:
        """Store the job's progress, state, figures or error (a dropped collection's job is not stored again)."""
        with self._lock:  # type: ignore[attr-defined]
            if not self.exists(job.tenant, job.collection):  # type: ignore[attr-defined]
                return job
            job = replace(job, updated_at=time.time())
            self._commit_job(job, "UPDATE reindex_jobs SET state = ?, cursor = ?, copied = ?, decision = ?, "
                                  "error = ?, updated_at = ? WHERE tenant = ? AND collection = ? AND generation = ?",
                             (job.state, job.cursor, job.copied, json.dumps(job.decision, sort_keys=True), job.error,
                              job.updated_at, job.tenant, job.collection, job.generation), "store the reindex's state")
            return job

    def promote(self, job: ReindexJob, spec: Any) -> ReindexJob:
        """The new generation serves: the collection's spec (a CollectionSpec) and the job's state change in one
        commit."""
        job = replace(job, state="promoted", updated_at=time.time())
        self.update_spec(job.tenant, job.collection, spec, job=job)  # type: ignore[attr-defined]
        return job

    def _commit_job(self, job: ReindexJob, sql: str, args: tuple, what: str) -> None:
        from simsearch.router.catalog import write_error

        try:
            with self._transaction():  # type: ignore[attr-defined]
                self._db.execute(sql, args)  # type: ignore[attr-defined]
        except sqlite3.Error as e:
            raise write_error(e, f"{what} of {excerpt(job.collection)}") from e
        self._remember(job)

    def _write_job(self, job: ReindexJob) -> None:
        self._db.execute("UPDATE reindex_jobs SET state = ?, decision = ?, error = ?, updated_at = ? "  # type: ignore
                         "WHERE tenant = ? AND collection = ? AND generation = ?",
                         (job.state, json.dumps(job.decision, sort_keys=True), job.error, job.updated_at,
                          job.tenant, job.collection, job.generation))

    def _remember(self, job: ReindexJob) -> None:
        key = (job.tenant, job.collection)
        others = tuple(j for j in self._jobs.get(key, ()) if j.generation != job.generation)
        self._jobs = {**self._jobs, key: tuple(sorted((job, *others), key=lambda j: -j.generation))}

    def _delete_jobs(self, tenant: str, collection: str | None = None) -> None:
        """Inside the caller's transaction: a dropped collection's (or tenant's) jobs go with it."""
        if collection is None:
            self._db.execute("DELETE FROM reindex_jobs WHERE tenant = ?", (tenant,))  # type: ignore[attr-defined]
        else:
            self._db.execute("DELETE FROM reindex_jobs WHERE tenant = ? AND collection = ?",  # type: ignore
                             (tenant, collection))

    def _forget_jobs(self, tenant: str, collection: str | None = None) -> None:
        """After that transaction committed."""
        self._jobs = {k: v for k, v in self._jobs.items() if k[0] != tenant or collection not in (None, k[1])}

def spec_dict(spec: Any) -> dict[str, Any]:
    """A CollectionSpec as the job stores it."""
    return asdict(spec)
