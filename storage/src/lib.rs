//! Stream and consumer stores (see the storage issue); built out in its own change.
