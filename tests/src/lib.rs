//! Integration tests for em live in `tests/`; this library is empty.
