//! neoagent wire format (being written).
