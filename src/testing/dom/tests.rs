//! Unit tests of the DOM model.
