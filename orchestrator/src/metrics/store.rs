//! [`TimedStore`]: every [`Store`] operation timed (and its failures counted) under its own
//! method name, in one wrapper instead of timing code in every handler.
//!
//! It wraps the store the handlers and the auth layer use, so what it measures is what a
//! request waits for (for MongoDB, `get_user` answered by the user cache included).

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Metrics;
use crate::store::methods::for_each_store_method;
use crate::store::model::*;
use crate::store::{Booked, Decide, Store, StoreResult};

/// A [`Store`] that records every call into [`Metrics`].
pub struct TimedStore {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl TimedStore {
    /// `inner` behind the timing wrapper, as a shareable store.
    pub fn shared(inner: Arc<dyn Store>, metrics: Arc<Metrics>) -> Arc<dyn Store> {
        Arc::new(TimedStore { inner, metrics })
    }
}

/// Implements every trait method as: start the clock, delegate, record under the method name.
macro_rules! timed {
    ($(
        $group:ident { $( $name:ident ( $( $arg:ident : $ty:ty ),* ) -> $ret:ty ; )* }
    )*) => {
        #[async_trait]
        impl Store for TimedStore {
            $($(
                async fn $name(&self, $( $arg: $ty ),*) -> $ret {
                    let t0 = Instant::now();
                    let r = self.inner.$name($( $arg ),*).await;
                    self.metrics.store_op(stringify!($name), t0, r.is_err());
                    r
                }
            )*)*
        }
    };
}

for_each_store_method!(timed!());
