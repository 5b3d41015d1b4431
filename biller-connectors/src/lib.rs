//! Biller connectors (filled by the dispatch issue).
