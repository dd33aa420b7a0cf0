//! Tower middleware that keeps an [Ocient HTTP Query API] access token fresh.
//!
//! [Ocient HTTP Query API]: https://docs.ocient.com
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub, rust_2018_idioms)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cache;
mod endpoint;
mod error;
mod fetch;
mod future;
mod layer;
mod ocient;
#[cfg(feature = "retry")]
mod retry;
mod service;
mod token;

#[cfg(feature = "mock")]
#[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
pub mod mock;

pub use endpoint::{Answer, TokenEndpoint};
pub use error::{Error, Exchange};
pub use future::ResponseFuture;
pub use layer::TokenRefreshLayer;
pub use ocient::OcientAuth;
#[cfg(feature = "retry")]
#[cfg_attr(docsrs, doc(cfg(feature = "retry")))]
pub use retry::RetryUnauthorized;
pub use service::TokenRefresh;
pub use token::{Grant, InvalidSecret, Secret, MAX_LIFETIME};
