//! robofy wire format (being written).
