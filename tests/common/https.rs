//! The client the loopback tests put the layer on: `ocient_mock::https_client`, trusting
//! exactly the CAs a test hands it and not the machine's own store, so no run depends on
//! what that store holds.

use rustls::RootCertStore;
use tower::BoxError;

pub use ocient_mock::HttpsClient;

/// A client for `https://` and loopback `http://` URIs that trusts each CA certificate in
/// `cas` (PEM), such as a `MockServer`'s; with none, it trusts no server at all.
pub fn https_client<B>(cas: &[String]) -> Result<HttpsClient<B>, BoxError>
where
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    ocient_mock::https_client(RootCertStore::empty(), cas)
}
