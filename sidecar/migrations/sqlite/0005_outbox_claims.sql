-- Claims on lanes of the outbox: a sidecar delivers a lane only while it holds the lane's claim, so that two
-- processes on one ledger (a second sidecar, or the `reconcile` command beside `serve`) never deliver the same lane
-- at once. A claim lapses at claimed_until, so a process that dies leaves its lanes to the others.
CREATE TABLE outbox_claims (
    lane TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    claimed_until INTEGER NOT NULL
);
