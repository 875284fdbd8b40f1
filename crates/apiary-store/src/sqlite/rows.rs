//! Row adapters (filled in with the read path).
