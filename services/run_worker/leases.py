"""Run leases: the holder of a run says it is alive by moving its lease forward; a lapsed lease frees the run."""

from __future__ import annotations

import asyncpg


class Leases:
    def __init__(self, pool: asyncpg.Pool, lease_ms: int) -> None:
        self._pool = pool
        self._lease_ms = lease_ms

    async def holder_alive(self, run_id: str, worker_id: str) -> bool:
        """True if another worker holds a lease on the run that has not lapsed."""
        row = await self._pool.fetchrow(
            "SELECT worker_id, expires_at > now() FROM run_leases WHERE run_id = $1", run_id)
        return row is not None and bool(row[1]) and row[0] != worker_id

    async def take(self, run_id: str, worker_id: str, attempt: int) -> None:
        await self._pool.execute(
            "INSERT INTO run_leases (run_id, worker_id, attempt, expires_at)"
            " VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond') ON CONFLICT (run_id)"
            " DO UPDATE SET worker_id = $2, attempt = $3, expires_at = now() + $4 * interval '1 millisecond'",
            run_id, worker_id, attempt, self._lease_ms)

    async def renew(self, run_id: str, worker_id: str, attempt: int) -> bool:
        """False when the lease is no longer ours (another worker took the run over)."""
        result: str = await self._pool.execute(
            "UPDATE run_leases SET expires_at = now() + $4 * interval '1 millisecond'"
            " WHERE run_id = $1 AND worker_id = $2 AND attempt = $3", run_id, worker_id, attempt, self._lease_ms)
        return result.endswith(" 1")

    async def release(self, run_id: str, worker_id: str, attempt: int) -> None:
        await self._pool.execute("DELETE FROM run_leases WHERE run_id = $1 AND worker_id = $2 AND attempt = $3",
                                 run_id, worker_id, attempt)
