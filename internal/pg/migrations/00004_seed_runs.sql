-- Which demo data sets were loaded, so that loading is done once.

-- +goose Up
CREATE TABLE seed_runs (
    name      TEXT PRIMARY KEY,
    loaded_at TIMESTAMPTZ NOT NULL
);

-- +goose Down
DROP TABLE seed_runs;
