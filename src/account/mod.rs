//! Accounts, users, authentication and permissions.
//!
//! `registry`: accounts (isolated subject spaces); `users`: configured users; `auth`: who a
//! CONNECT logs in as; `permissions`: compiled publish/subscribe rules; `grants`: a
//! connection's dynamic permission state (delivery filter, response grants); `imports`:
//! stream and service imports between accounts; `mappings`: subject mappings of what an
//! account's clients publish.

pub mod auth;
pub mod grants;
pub mod imports;
pub mod mappings;
pub mod permissions;
pub mod registry;
pub mod users;

pub use registry::{Account, Accounts, GLOBAL_ACCOUNT};
