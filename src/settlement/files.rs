//! Settlement files (being written).
