//! (stub: filled by its own work branch)
