//! The sidecar's integration tests: the real server on 127.0.0.1:0, a fresh SQLite database each, a clock the
//! tests move by hand.

mod admin;
mod alerts;
mod bad_input;
mod binary;
mod concurrency;
mod fake_stripe;
mod helpers;
mod limits;
mod metrics;
mod money;
mod movements;
mod openapi;
mod outbox;
mod replicas;
mod reservations;
mod returns;
mod security;
mod stripe_cancel;
mod webhooks;
