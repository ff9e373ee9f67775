//! LeoTest client library.
