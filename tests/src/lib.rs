//! End-to-end test crate: the tests live in tests/tests/ and start the real binaries.
