//! The two SASL mechanisms SMTP's AUTH commonly uses (RFC 4954), both
//! sides: PLAIN (RFC 4616: `authzid NUL authcid NUL password`, in base64)
//! and LOGIN (the user name and the password, each in base64, each after
//! its own `334` prompt).

use crate::sasl::{PlainCredentials, SaslError};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// The server's prompt for LOGIN's user name: `Username:` in base64.
pub(crate) const LOGIN_USERNAME: &str = "VXNlcm5hbWU6";
/// The server's prompt for LOGIN's password: `Password:` in base64.
pub(crate) const LOGIN_PASSWORD: &str = "UGFzc3dvcmQ6";

/// A SASL mechanism for [`SmtpClient::auth`](super::SmtpClient::auth).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpAuthMechanism {
    /// PLAIN if the server offers it, else LOGIN.
    Auto,
    /// `AUTH PLAIN` with its initial response (RFC 4616).
    Plain,
    /// `AUTH LOGIN`: the user name and the password, each after a prompt.
    Login,
}

impl SmtpAuthMechanism {
    pub(crate) fn name(self) -> &'static str {
        match self {
            SmtpAuthMechanism::Auto => "PLAIN or LOGIN",
            SmtpAuthMechanism::Plain => "PLAIN",
            SmtpAuthMechanism::Login => "LOGIN",
        }
    }
}

pub(crate) fn encode(data: impl AsRef<[u8]>) -> String {
    STANDARD.encode(data)
}

/// Base64 decoded; `None` if it is not base64. A lone `=` is an empty
/// response (RFC 4954's initial response of zero length).
pub(crate) fn decode(data: &str) -> Option<Vec<u8>> {
    match data.trim() {
        "=" => Some(Vec::new()),
        data => STANDARD.decode(data).ok(),
    }
}

/// PLAIN's response for `user` and `password`, with no authorization
/// identity: RFC 4616's message ([`PlainCredentials`]), in base64. The
/// error says why the credentials cannot be sent (a NUL in one, or an
/// empty one).
pub(crate) fn plain_response(user: &str, password: &str) -> Result<String, SaslError> {
    PlainCredentials::new(user, password).encode().map(encode)
}

/// The user and password in PLAIN's response (the authorization identity
/// is read and dropped); `None` if it is malformed (RFC 4616, as
/// [`PlainCredentials::decode`] reads it).
pub(crate) fn parse_plain(response: &str) -> Option<(String, String)> {
    let credentials = PlainCredentials::decode(&decode(response)?).ok()?;
    Some((credentials.authcid, credentials.password))
}

/// A LOGIN response (a user name or a password); `None` if it is not
/// base64 of UTF-8.
pub(crate) fn parse_login(response: &str) -> Option<String> {
    String::from_utf8(decode(response)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_round_trips() {
        let r = plain_response("alice", "s3cret").unwrap();
        assert_eq!(r, "AGFsaWNlAHMzY3JldA==");
        assert_eq!(parse_plain(&r), Some(("alice".into(), "s3cret".into())));
        // An authorization identity is allowed and dropped.
        assert_eq!(
            parse_plain(&encode("admin\0alice\0pw")),
            Some(("alice".into(), "pw".into()))
        );
        assert_eq!(parse_plain("not base64!"), None);
        assert_eq!(parse_plain(&encode("no separators")), None);
        assert_eq!(parse_plain(&encode("\0\0pw")), None);
    }

    #[test]
    fn a_lone_equals_sign_is_an_empty_response() {
        assert_eq!(decode("="), Some(Vec::new()));
        assert_eq!(parse_login("=").as_deref(), Some(""));
        // An empty PLAIN message holds no credentials.
        assert_eq!(parse_plain("="), None);
    }

    #[test]
    fn login_prompts_are_what_clients_expect() {
        assert_eq!(parse_login(LOGIN_USERNAME).as_deref(), Some("Username:"));
        assert_eq!(parse_login(LOGIN_PASSWORD).as_deref(), Some("Password:"));
    }
}
