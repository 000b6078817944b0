-- Brokkr data model (DESIGN §3): tables, constraints and indexes.
-- Triggers live in 0002_triggers.

-- Text rules shared by several tables (DESIGN §3): names are non-empty and at most
-- 255 characters; labels, annotation keys and values are non-empty, at most 64
-- characters and contain no whitespace. "Whitespace" is Go's unicode.IsSpace,
-- spelled out rather than [[:space:]], whose meaning depends on the
-- database's locale (under LC_CTYPE C it misses U+00A0 and the other Unicode
-- spaces).
CREATE FUNCTION brokkr_has_space(v text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN v ~ '[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]';

-- Not blank: at least one character that is not whitespace.
CREATE FUNCTION brokkr_not_blank(v text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN v ~ '[^\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]';

CREATE FUNCTION brokkr_valid_name(v text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN v IS NOT NULL AND brokkr_not_blank(v) AND char_length(v) <= 255;

CREATE FUNCTION brokkr_valid_token(v text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN v IS NOT NULL AND char_length(v) BETWEEN 1 AND 64 AND NOT brokkr_has_space(v);

CREATE TABLE generators (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                  text NOT NULL CONSTRAINT generators_name_check CHECK (brokkr_valid_name(name)),
    description           text,
    pak_hash              text CONSTRAINT generators_pak_hash_check CHECK (pak_hash ~ '^[0-9a-f]{64}$'),
    is_active             boolean NOT NULL DEFAULT true,
    last_active_at        timestamptz,
    rate_limit_per_minute integer CONSTRAINT generators_rate_limit_per_minute_check CHECK (rate_limit_per_minute > 0),
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    deleted_at            timestamptz
);
CREATE UNIQUE INDEX generators_name_live_key ON generators (name) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX generators_pak_hash_key ON generators (pak_hash);
CREATE INDEX generators_created_at_idx ON generators (created_at, id);

CREATE TABLE stacks (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name         text NOT NULL CONSTRAINT stacks_name_check CHECK (brokkr_valid_name(name)),
    description  text,
    generator_id uuid NOT NULL CONSTRAINT stacks_generator_id_fkey REFERENCES generators (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    deleted_at   timestamptz
);
CREATE UNIQUE INDEX stacks_generator_id_name_live_key ON stacks (generator_id, name) WHERE deleted_at IS NULL;
CREATE INDEX stacks_generator_id_idx ON stacks (generator_id);
CREATE INDEX stacks_name_idx ON stacks (name) WHERE deleted_at IS NULL;
CREATE INDEX stacks_created_at_idx ON stacks (created_at, id);

-- sequence_id is the global order of deployment objects (DESIGN §3.3). It is a
-- BIGSERIAL in spirit, but the value is assigned by the BEFORE INSERT trigger of
-- 0002 under a transaction-scoped advisory lock, never by a column default, so
-- that allocation order equals commit order.
CREATE SEQUENCE deployment_objects_sequence_id_seq AS bigint;
CREATE TABLE deployment_objects (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sequence_id        bigint NOT NULL CONSTRAINT deployment_objects_sequence_id_key UNIQUE,
    stack_id           uuid NOT NULL CONSTRAINT deployment_objects_stack_id_fkey REFERENCES stacks (id) ON DELETE CASCADE,
    yaml_content       text NOT NULL,
    yaml_checksum      text NOT NULL,
    submitted_at       timestamptz NOT NULL DEFAULT now(),
    is_deletion_marker boolean NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    deleted_at         timestamptz,
    -- The checksum is the lowercase hex SHA-256 of the content, whoever inserts.
    CONSTRAINT deployment_objects_yaml_checksum_check
        CHECK (yaml_checksum = encode(sha256(convert_to(yaml_content, 'UTF8')), 'hex')),
    -- A deletion marker carries no content.
    CONSTRAINT deployment_objects_marker_content_check
        CHECK (NOT is_deletion_marker OR yaml_content = '')
);
ALTER SEQUENCE deployment_objects_sequence_id_seq OWNED BY deployment_objects.sequence_id;
CREATE INDEX deployment_objects_stack_id_sequence_id_idx ON deployment_objects (stack_id, sequence_id DESC);
CREATE INDEX deployment_objects_stack_id_sequence_id_live_idx ON deployment_objects (stack_id, sequence_id DESC)
    WHERE deleted_at IS NULL;

CREATE TABLE agents (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name           text NOT NULL CONSTRAINT agents_name_check CHECK (brokkr_valid_name(name)),
    cluster_name   text NOT NULL CONSTRAINT agents_cluster_name_check CHECK (brokkr_valid_name(cluster_name)),
    status         text NOT NULL DEFAULT 'INACTIVE' CONSTRAINT agents_status_check CHECK (status IN ('ACTIVE', 'INACTIVE')),
    last_heartbeat timestamptz,
    pak_hash       text CONSTRAINT agents_pak_hash_check CHECK (pak_hash ~ '^[0-9a-f]{64}$'),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz
);
CREATE UNIQUE INDEX agents_name_cluster_name_live_key ON agents (name, cluster_name) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX agents_pak_hash_key ON agents (pak_hash);
CREATE INDEX agents_status_idx ON agents (status) WHERE deleted_at IS NULL;
CREATE INDEX agents_created_at_idx ON agents (created_at, id);

CREATE TABLE agent_events (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id             uuid NOT NULL CONSTRAINT agent_events_agent_id_fkey REFERENCES agents (id) ON DELETE CASCADE,
    deployment_object_id uuid NOT NULL CONSTRAINT agent_events_deployment_object_id_fkey REFERENCES deployment_objects (id) ON DELETE CASCADE,
    event_type           varchar(50) NOT NULL CONSTRAINT agent_events_event_type_check CHECK (brokkr_not_blank(event_type)),
    status               varchar(10) NOT NULL CONSTRAINT agent_events_status_check CHECK (brokkr_not_blank(status)),
    message              text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    deleted_at           timestamptz
);
CREATE INDEX agent_events_agent_id_created_at_idx ON agent_events (agent_id, created_at DESC);
CREATE INDEX agent_events_deployment_object_id_idx ON agent_events (deployment_object_id, created_at DESC);

-- announced_at: when the agent feed first handed this stack's objects to the
-- agent (DESIGN §5: a target added while the agent was away is delivered on
-- resume). announced_seq: the feed position at which the stack's latest object
-- was last handed over out of sequence order (a new target); a resume after a
-- later position proves the agent received it, -1 means it came in order.
CREATE TABLE agent_targets (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id      uuid NOT NULL CONSTRAINT agent_targets_agent_id_fkey REFERENCES agents (id) ON DELETE CASCADE,
    stack_id      uuid NOT NULL CONSTRAINT agent_targets_stack_id_fkey REFERENCES stacks (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    announced_at  timestamptz,
    announced_seq bigint,
    CONSTRAINT agent_targets_agent_id_stack_id_key UNIQUE (agent_id, stack_id)
);
CREATE INDEX agent_targets_stack_id_idx ON agent_targets (stack_id);

CREATE TABLE stack_labels (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    stack_id   uuid NOT NULL CONSTRAINT stack_labels_stack_id_fkey REFERENCES stacks (id) ON DELETE CASCADE,
    label      text NOT NULL CONSTRAINT stack_labels_label_check CHECK (brokkr_valid_token(label)),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT stack_labels_stack_id_label_key UNIQUE (stack_id, label)
);
CREATE INDEX stack_labels_label_idx ON stack_labels (label);

CREATE TABLE stack_annotations (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    stack_id   uuid NOT NULL CONSTRAINT stack_annotations_stack_id_fkey REFERENCES stacks (id) ON DELETE CASCADE,
    key        text NOT NULL CONSTRAINT stack_annotations_key_check CHECK (brokkr_valid_token(key)),
    value      text NOT NULL CONSTRAINT stack_annotations_value_check CHECK (brokkr_valid_token(value)),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT stack_annotations_stack_id_key_key UNIQUE (stack_id, key)
);
CREATE INDEX stack_annotations_key_value_idx ON stack_annotations (key, value);

CREATE TABLE agent_labels (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id   uuid NOT NULL CONSTRAINT agent_labels_agent_id_fkey REFERENCES agents (id) ON DELETE CASCADE,
    label      text NOT NULL CONSTRAINT agent_labels_label_check CHECK (brokkr_valid_token(label)),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT agent_labels_agent_id_label_key UNIQUE (agent_id, label)
);
CREATE INDEX agent_labels_label_idx ON agent_labels (label);

CREATE TABLE agent_annotations (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id   uuid NOT NULL CONSTRAINT agent_annotations_agent_id_fkey REFERENCES agents (id) ON DELETE CASCADE,
    key        text NOT NULL CONSTRAINT agent_annotations_key_check CHECK (brokkr_valid_token(key)),
    value      text NOT NULL CONSTRAINT agent_annotations_value_check CHECK (brokkr_valid_token(value)),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT agent_annotations_agent_id_key_key UNIQUE (agent_id, key)
);
CREATE INDEX agent_annotations_key_value_idx ON agent_annotations (key, value);

-- The admin key (DESIGN §4): at most one live row; rotation retires the old one.
CREATE TABLE admin_keys (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    pak_hash   text NOT NULL CONSTRAINT admin_keys_pak_hash_check CHECK (pak_hash ~ '^[0-9a-f]{64}$'),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);
CREATE UNIQUE INDEX admin_keys_pak_hash_key ON admin_keys (pak_hash);
CREATE UNIQUE INDEX admin_keys_one_live_key ON admin_keys ((true)) WHERE deleted_at IS NULL;
