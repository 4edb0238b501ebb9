-- Instances as last seen in Consul's catalog. Rows stay after
-- deregistration, so that history can still be asked for, until retention
-- removes them.
CREATE TABLE instances (
	id         INTEGER PRIMARY KEY,
	node       TEXT    NOT NULL,
	service_id TEXT    NOT NULL,
	name       TEXT    NOT NULL,
	address    TEXT    NOT NULL,
	port       INTEGER NOT NULL,
	tags       TEXT    NOT NULL, -- JSON array
	meta       TEXT    NOT NULL, -- JSON object
	registered INTEGER NOT NULL, -- 1 while the instance is in the catalog
	UNIQUE (node, service_id)
);

-- A row each time an instance enters (registered = 1) or leaves the catalog.
CREATE TABLE registrations (
	instance_id INTEGER NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
	at_ms       INTEGER NOT NULL,
	registered  INTEGER NOT NULL,
	PRIMARY KEY (instance_id, at_ms)
) WITHOUT ROWID;

-- Checks as last seen. service_id is '' for a node check, which counts for
-- every instance on the node; status is '' once the check is gone.
CREATE TABLE checks (
	id         INTEGER PRIMARY KEY,
	node       TEXT NOT NULL,
	check_id   TEXT NOT NULL,
	service_id TEXT NOT NULL,
	name       TEXT NOT NULL,
	status     TEXT NOT NULL,
	output     TEXT NOT NULL,
	UNIQUE (node, check_id)
);
CREATE INDEX checks_by_instance ON checks (node, service_id);

-- A row each time a check's status changes: the status holds from at_ms
-- until the check's next row. '' means the check did not exist.
CREATE TABLE check_spans (
	check_id INTEGER NOT NULL REFERENCES checks (id) ON DELETE CASCADE,
	at_ms    INTEGER NOT NULL,
	status   TEXT    NOT NULL,
	PRIMARY KEY (check_id, at_ms)
) WITHOUT ROWID;

-- The periods in which the watcher was reading Consul. Time outside them is
-- no data, whatever the spans say.
CREATE TABLE observations (
	id       INTEGER PRIMARY KEY,
	start_ms INTEGER NOT NULL,
	end_ms   INTEGER NOT NULL
);
CREATE INDEX observations_by_end ON observations (end_ms);

-- Keys the process generates once and keeps, such as the settings cookie's
-- signing key.
CREATE TABLE secrets (
	name  TEXT PRIMARY KEY,
	value BLOB NOT NULL
);
