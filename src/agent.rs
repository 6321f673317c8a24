//! Agent wiring (in progress).
