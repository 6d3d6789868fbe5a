//! `leads`: export leads and conversations from Chatzuri, NeoAgent,
//! Robofy and Chatbase into one model. The binary (`src/main.rs`) is a thin layer over
//! this library: `config` settles the command line, `export` walks the
//! vendors' listings through `fetch`, and `output` writes the records.

pub mod app;
pub mod check;
pub mod cli;
pub mod commands;
pub mod config;
pub mod db;
pub mod driver;
pub mod error;
pub mod export;
pub mod fetch;
pub mod idle;
pub mod keys;
pub mod model;
pub mod output;
pub mod pipe;
pub mod process;
pub mod progress;
mod relay;
pub mod report;
#[cfg(feature = "sandbox")]
pub mod sandbox;
/// Built without the `sandbox` feature: the simulator's interface, with no
/// simulator behind it.
#[cfg(not(feature = "sandbox"))]
#[path = "sandbox_absent.rs"]
pub mod sandbox;
pub mod schema;
pub mod secret;
pub mod singer;
pub mod sources;
pub mod state;
pub mod time;
pub mod vendors;
pub mod words;
