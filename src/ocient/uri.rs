//! Where Ocient token requests go: a node's URI with a path, never with its
//! `user:password@`.

use http::Uri;

/// `{node}{path}`, without any `user:password@` of the node: the credentials go in the
/// body, and a URI ends up in error messages and logs.
pub(super) fn at(node: &Uri, path: &str) -> Uri {
    let scheme = node.scheme_str().unwrap_or("http");
    let authority = host_and_port(node);
    let prefix = node.path().trim_end_matches('/');
    format!("{scheme}://{authority}{prefix}{path}")
        .parse()
        // Unparseable only for a node that names no host: the request then fails in the
        // wrapped service, with the path alone to show.
        .unwrap_or_else(|_| Uri::from_static("/"))
}

/// The authority of `uri` without any `user:password@`.
pub(super) fn host_and_port(uri: &Uri) -> &str {
    uri.authority()
        .map_or("", |a| a.as_str().rsplit('@').next().unwrap_or_default())
}
