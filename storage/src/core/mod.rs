//! The part shared by every store: the index, the limits, and the generic store wrapper.

pub(crate) mod backend;
pub(crate) mod index;
pub(crate) mod seq_map;
mod store;
pub(crate) mod stream;

pub use store::Store;
