//! Accounts, users and authentication. For now: one global account and the single-user or
//! token check of the `authorization {}` block; users, accounts and permissions come with the
//! security issue.

pub mod auth;
pub mod registry;

pub use registry::{Account, Accounts, GLOBAL_ACCOUNT};
