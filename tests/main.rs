//! End-to-end tests through real clients.
