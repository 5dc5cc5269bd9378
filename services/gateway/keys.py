"""The only place gateway state is named: typed keys on the application and the request."""

from __future__ import annotations

import uuid

import asyncpg
from aiohttp import web

from shared.budgets import Budgets
from shared.bus import Bus
from shared.config import Settings
from shared.consistency import ConsistencyWaiter
from shared.deltas import RetainedReads
from shared.repository import Repository
from shared.state import AssistantState, ThreadState
from shared.store import EventStore

from .auth import Principal, PrincipalCache
from .idempotency import IdempotencyKeys
from .limits import RateLimiter
from .metrics import GatewayMetrics
from .queries import Queries

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
STORE = web.AppKey("store", EventStore)
BUS = web.AppKey("bus", Bus)
THREADS = web.AppKey("threads", Repository[ThreadState])
ASSISTANTS = web.AppKey("assistants", Repository[AssistantState])
CONSISTENCY = web.AppKey("consistency", ConsistencyWaiter)
PRINCIPALS = web.AppKey("principals", PrincipalCache)
METRICS = web.AppKey("metrics", GatewayMetrics)
QUERIES = web.AppKey("queries", Queries)
IDEMPOTENCY = web.AppKey("idempotency", IdempotencyKeys)
BUDGETS = web.AppKey("budgets", Budgets)
RETAINED = web.AppKey("retained", RetainedReads)
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)

PRINCIPAL = web.RequestKey("principal", Principal)
REQUEST_ID = web.RequestKey("request_id", uuid.UUID)
