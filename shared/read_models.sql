-- The read models: built only by the projector, from the log, and rebuildable at any time.
-- Names are unqualified: `threadlog replay` creates the same tables in a shadow schema, then swaps them in.

CREATE TABLE IF NOT EXISTS threads (
    thread_id   text PRIMARY KEY,
    tenant_id   text NOT NULL,
    position    bigint NOT NULL,
    created_at  bigint NOT NULL,
    metadata    jsonb NOT NULL,
    body        jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS threads_tenant_position ON threads (tenant_id, position);
CREATE INDEX IF NOT EXISTS threads_metadata ON threads USING gin (metadata jsonb_path_ops);

CREATE TABLE IF NOT EXISTS messages (
    message_id  text PRIMARY KEY,
    thread_id   text NOT NULL,
    tenant_id   text NOT NULL,
    -- The stream version that created the message: a total, stable order inside the thread.
    seq         integer NOT NULL,
    run_id      text,
    body        jsonb NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_thread_seq ON messages (thread_id, seq);
CREATE INDEX IF NOT EXISTS messages_thread_run_seq ON messages (thread_id, run_id, seq) WHERE run_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS assistants (
    assistant_id text PRIMARY KEY,
    tenant_id    text NOT NULL,
    position     bigint NOT NULL,
    body         jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS assistants_tenant_position ON assistants (tenant_id, position);

CREATE TABLE IF NOT EXISTS runs (
    run_id       text PRIMARY KEY,
    thread_id    text NOT NULL,
    tenant_id    text NOT NULL,
    assistant_id text NOT NULL,
    seq          integer NOT NULL,
    status       text NOT NULL,
    body         jsonb NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS runs_thread_seq ON runs (thread_id, seq);

CREATE TABLE IF NOT EXISTS run_steps (
    step_id      text PRIMARY KEY,
    run_id       text NOT NULL,
    thread_id    text NOT NULL,
    tenant_id    text NOT NULL,
    seq          integer NOT NULL,
    body         jsonb NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS run_steps_run_seq ON run_steps (run_id, seq);


-- Tokens spent, one row per finished run (kept when its thread is deleted: spending is not content).
CREATE TABLE IF NOT EXISTS run_usage (
    run_id            text PRIMARY KEY,
    tenant_id         text NOT NULL,
    thread_id         text NOT NULL,
    assistant_id      text NOT NULL,
    ended_at          bigint NOT NULL,
    prompt_tokens     bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    total_tokens      bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS run_usage_tenant_time ON run_usage (tenant_id, ended_at);
CREATE INDEX IF NOT EXISTS run_usage_thread ON run_usage (thread_id);
CREATE INDEX IF NOT EXISTS runs_tenant_active ON runs (tenant_id)
    WHERE status IN ('queued', 'in_progress', 'requires_action', 'cancelling');

-- Conversation items (every message, function call and output of a thread), in one total order:
-- seq = stream version * 1000 + the item's index within its event.
CREATE TABLE IF NOT EXISTS items (
    item_id    text PRIMARY KEY,
    thread_id  text NOT NULL,
    tenant_id  text NOT NULL,
    seq        bigint NOT NULL,
    body       jsonb NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS items_thread_seq ON items (thread_id, seq);

CREATE TABLE IF NOT EXISTS responses (
    response_id          text PRIMARY KEY,
    thread_id            text NOT NULL,  -- its stream: a conversation's thread or its own hidden stream
    tenant_id            text NOT NULL,
    conversation_id      text,
    previous_response_id text,
    status               text NOT NULL,
    position             bigint NOT NULL,
    input_item_ids       text[] NOT NULL,
    body                 jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_thread ON responses (thread_id);
