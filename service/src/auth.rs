//! Bearer tokens, the same for both services (API.md: every endpoint but
//! `/healthz` when tokens are configured). Tokens are compared in constant
//! time (`subtle`), so response timing does not reveal how much of a
//! guessed token was right.

use subtle::ConstantTimeEq;

/// The shortest token accepted in a config: shorter ones are guessable.
pub const MIN_TOKEN_LEN: usize = 8;

/// Whether a request presenting `token` (from its `Authorization: Bearer`
/// header, see [`bearer`]) may pass: always when no tokens are configured,
/// else only with one of them (surrounding spaces in the config ignored).
pub fn allows(tokens: &[String], token: Option<&str>) -> bool {
    if tokens.is_empty() {
        return true;
    }
    let Some(token) = token else {
        return false;
    };
    // Every configured token is compared, whichever matches.
    tokens.iter().fold(0u8, |ok, t| {
        ok | t.trim().as_bytes().ct_eq(token.as_bytes()).unwrap_u8()
    }) == 1
}

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Names the first token too short to keep out a guesser, if any.
pub fn too_short(tokens: &[String]) -> Option<usize> {
    tokens.iter().position(|t| t.trim().len() < MIN_TOKEN_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configured_tokens_pass() {
        assert!(allows(&[], None));
        let t = ["first-token".to_string(), " second-token ".to_string()];
        assert!(allows(&t, Some("first-token")));
        assert!(allows(&t, Some("second-token")));
        assert!(!allows(&t, None));
        assert!(!allows(&t, Some("")));
        assert!(!allows(&t, Some("first-toke")));
        assert!(!allows(&t, Some("first-token2")));
    }

    #[test]
    fn bearer_headers_are_parsed() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearerabc"), None);
    }

    #[test]
    fn short_tokens_are_named() {
        assert_eq!(too_short(&["long-enough".into(), "short".into()]), Some(1));
        assert_eq!(too_short(&["long-enough".into()]), None);
    }
}
