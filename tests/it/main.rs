//! The integration suite, one test binary: each module drives the built
//! `leads` binary against real servers on loopback (the sandbox, wiremock, or
//! a scripted TCP/TLS server) and checks what a user or script would see.

#[allow(dead_code)]
mod common;

mod architecture;
mod chatbase;
mod check;
mod cli;
mod config_sources;
mod conversations;
mod db_postgres;
mod db_sqlite;
mod design;
mod faults;
mod golden;
mod hardening_pages;
mod hardening_secrets;
mod hardening_state;
mod incremental;
mod pull_http;
mod report;
mod sandbox_chatbase;
mod sandbox_e2e;
mod schema;
mod singer;
mod spreadsheets;
mod streaming;
mod ux;
