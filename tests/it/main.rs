//! The integration tests, as one test binary (compiled and linked once): the
//! real server on port 0 against Postgres and the embedded store, the real
//! binary, the deploy kit, and independent verifiers. Run them all with
//! `bash tests/run`; one module with `cargo test --test it hardening::`.

#[macro_use]
mod common;

mod admin;
mod api;
mod aws;
mod aws_rules;
mod cli;
mod cli_admin;
mod deploy;
mod first_hour;
mod hardening;
mod layering;
mod operations;
mod outage;
mod rotation;
mod sqlite_files;
mod store_conformance;
