//! The built-in vendor simulator (being written).
