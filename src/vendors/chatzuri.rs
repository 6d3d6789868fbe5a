//! chatzuri wire format (being written).
