//! What every error shows, and what it never does.

use super::*;

fn rejected(reason: &str) -> Error {
    let code = ErrorCode::Named("invalid_token".into());
    Error::rejected(
        Exchange::Refresh,
        StatusCode::UNAUTHORIZED,
        Some(code),
        reason,
    )
}

#[test]
fn a_secret_the_server_echoed_is_redacted_everywhere_it_shows() {
    for error in [
        rejected("token t0k3n-abc is unknown, t0k3n-abc!"),
        Error::invalid_response(Exchange::Refresh, "t0k3n-abc is unknown, t0k3n-abc!"),
    ] {
        let error = error.without_secret("t0k3n-abc");
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains("t0k3n-abc"), "{shown}");
        assert_eq!(shown.matches("<redacted>").count(), 4, "{shown}");
    }
}

#[derive(Debug, thiserror::Error)]
#[error("vault sealed: s3cr3t")]
struct Sealed(#[source] std::io::Error);

#[test]
fn a_provider_error_is_told_only_to_whoever_asks_for_it() {
    let cause = std::io::Error::other("disk gone");
    let error = Error::Provider {
        source: ProviderError::new(Sealed(cause)),
    };
    assert_eq!(error.to_string(), "the credentials provider failed");
    let debug = format!("{error:?}");
    assert!(debug.contains("ProviderError(<not shown>)"), "{debug}");
    assert!(!debug.contains("s3cr3t"), "{debug}");
    let provider = std::error::Error::source(&error).expect("the provider's error");
    assert_eq!(provider.to_string(), "vault sealed: s3cr3t");
    let cause = provider.source().expect("and what it says caused it");
    assert_eq!(cause.to_string(), "disk gone");
}

#[test]
fn a_rejection_says_its_code_and_keeps_server_text_to_one_short_line() {
    let named = Error::rejected(
        Exchange::Refresh,
        StatusCode::BAD_REQUEST,
        Some(ErrorCode::Named("invalid_grant\n".into())),
        format!("spent\r\ntoken{}", "x".repeat(300)),
    )
    .shortened();
    assert_eq!(
        named.code(),
        Some(&ErrorCode::Named("invalid_grant".into()))
    );
    let Error::Rejected { reason, .. } = &named else {
        unreachable!()
    };
    assert_eq!(reason.chars().count(), 256);
    assert!(reason.starts_with("spenttokenxxx"), "{reason}");
    assert!(
        named.to_string().starts_with(
            "token refresh rejected: HTTP 400 Bad Request, error invalid_grant: spent"
        ),
        "{named}"
    );
    let bare = Error::rejected(Exchange::Login, StatusCode::FORBIDDEN, None, "");
    assert_eq!(bare.code(), None);
    assert_eq!(bare.to_string(), "login rejected: HTTP 403 Forbidden");
    assert_eq!(Error::MissingCredentials.code(), None);
}

#[test]
fn text_without_the_secret_is_left_alone() {
    let error = rejected("token unknown").without_secret("t0k3n-abc");
    assert!(error.to_string().ends_with(": token unknown"), "{error}");
    // An empty secret is in every text: it redacts nothing.
    let error = rejected("token unknown").without_secret("");
    assert!(error.to_string().ends_with(": token unknown"), "{error}");
    let timeout = Error::Timeout {
        exchange: Exchange::Login,
        after: Duration::from_secs(1),
    };
    let shown = timeout.to_string();
    assert_eq!(timeout.without_secret("1").to_string(), shown);
}

#[test]
fn a_secret_across_the_cut_or_in_a_code_never_shows() {
    let token = "OPAQUE-TOKEN-0123456789abcdef";
    let reason = format!("{}{token}", "x".repeat(240));
    let code = ErrorCode::Named(format!("bad {token}"));
    let status = StatusCode::BAD_REQUEST;
    let error = Error::rejected(Exchange::Refresh, status, Some(code), reason)
        .without_secret(token)
        .shortened();
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("OPAQUE"), "{shown}");
    assert_eq!(
        error.code(),
        Some(&ErrorCode::Named("bad <redacted>".into()))
    );
}
