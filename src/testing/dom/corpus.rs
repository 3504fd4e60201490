//! The shared corpus runner.
