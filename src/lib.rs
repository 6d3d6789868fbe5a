//! `leads`: export leads and conversations from Chatzuri, NeoAgent and
//! Robofy into one model. The binary (`src/main.rs`) is a thin layer over
//! this library.

pub mod error;
pub mod fetch;
pub mod model;
pub mod secret;
pub mod time;
pub mod vendors;
pub mod output;
pub mod sandbox;
